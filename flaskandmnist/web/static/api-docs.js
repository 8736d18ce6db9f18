// Starts Swagger UI on /api/docs. A file, not an inline script: the Content-Security-Policy
// allows scripts from this origin only.
const root = document.querySelector("[data-swagger-ui]");
window.SwaggerUIBundle({
  domNode: root,
  url: root.dataset.openapi,
  deepLinking: true,
  // No call to swagger.io's validator: the page works offline and stays within the CSP.
  validatorUrl: null,
  presets: [window.SwaggerUIBundle.presets.apis],
  layout: "BaseLayout",
});
