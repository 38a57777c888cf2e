// Swagger UI for this API's document (its URL on the container's data-spec-url).
// validatorUrl null: no badge fetched from the public validator (the docs work offline).
(function () {
  const container = document.getElementById("swagger-ui");
  window.ui = SwaggerUIBundle({
    url: container.dataset.specUrl,
    dom_id: "#swagger-ui",
    deepLinking: true,
    validatorUrl: null,
    presets: [SwaggerUIBundle.presets.apis],
    layout: "BaseLayout",
  });
})();
