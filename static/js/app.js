// Small progressive enhancements on top of htmx; every page works without this file.
document.addEventListener("htmx:afterSwap", () => {
  const flash = document.getElementById("flash");
  if (flash && flash.children.length) flash.scrollIntoView({ block: "nearest" });
});
