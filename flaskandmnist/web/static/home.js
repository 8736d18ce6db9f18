// The home page: drawing and uploading, both answered in the result card without a reload.

import { ApiError, postJson, refusedPrediction } from "./api.js";
import { DrawingPad } from "./canvas.js";
import { ResultCard } from "./result.js";
import { setupUpload } from "./upload.js";

const workspace = document.querySelector(".workspace");
const url = workspace.dataset.predictionsUrl;
const result = new ResultCard(document.querySelector("[data-result]"));

/** A function that shows a message in `element` (and hides it when the message is ""). */
function messenger(element) {
  return (message) => {
    element.textContent = message;
    element.hidden = !message;
  };
}

// --- drawing ---
const pad = new DrawingPad(document.querySelector("[data-pad]"));
const button = (action) => document.querySelector(`[data-action="${action}"]`);
const [undo, clear, recognise] = ["undo", "clear", "recognise"].map(button);
const drawError = messenger(document.querySelector("[data-draw-error]"));

pad.addEventListener("change", () => {
  for (const control of [undo, clear, recognise]) control.disabled = pad.isEmpty;
  drawError("");
});
undo.addEventListener("click", () => pad.undo());
clear.addEventListener("click", () => pad.clear());
document.addEventListener("keydown", (event) => {
  const typing = event.target.closest?.("input, textarea, select");
  if ((event.ctrlKey || event.metaKey) && event.key === "z" && !typing) {
    event.preventDefault();
    pad.undo();
  }
});

recognise.addEventListener("click", async () => {
  recognise.disabled = true;
  recognise.classList.add("is-busy");
  try {
    result.show(await postJson(url, { image: pad.toDataURL(), source: "canvas" }));
  } catch (error) {
    // Not a digit: stored all the same; the result card says so and offers a correction.
    const refused = refusedPrediction(error);
    if (refused) result.show(refused);
    else drawError(error instanceof ApiError ? error.message : String(error));
  } finally {
    recognise.disabled = pad.isEmpty;
    recognise.classList.remove("is-busy");
  }
});

// --- uploading ---
setupUpload(document.querySelector("[data-upload]"), {
  url,
  onResult: (answer) => result.show(answer),
  showError: messenger(document.querySelector("[data-upload-error]")),
});
