// Small progressive enhancements on top of htmx; every page works without this file.
document.addEventListener("htmx:afterSwap", () => {
  const flash = document.getElementById("flash");
  if (flash && flash.children.length) flash.scrollIntoView({ block: "nearest" });
});

// "Close" links of panels opened in place: empty the panel and give focus back to what
// opened it (the first of `data-return-focus` that exists). Without JavaScript the link
// goes to the page the panel belongs to.
document.addEventListener("click", (event) => {
  const link = event.target.closest("[data-close-target]");
  if (!link) return;
  const panel = document.getElementById(link.dataset.closeTarget);
  if (!panel) return;
  event.preventDefault();
  panel.replaceChildren();
  const back = (link.dataset.returnFocus || "")
    .split(" ")
    .map((id) => document.getElementById(id))
    .find(Boolean);
  if (back) back.focus();
});
