// The upload form: file picker and drag and drop, a preview, and recognition through the
// API. Without script the same form posts to /upload and the server renders the result.

import { ApiError, postForm, refusedPrediction } from "./api.js";

function formatSize(bytes) {
  return bytes < 1024 * 1024 ? `${Math.ceil(bytes / 1024)} KB` : `${(bytes / 1048576).toFixed(1)} MB`;
}

/**
 * Wires up the form: it posts to the API's `url`, hands the answer to `onResult`, and
 * `showError` puts a message in front of the person ("" hides it).
 */
export function setupUpload(form, { url, onResult, showError }) {
  const input = form.querySelector('input[type="file"]');
  const dropzone = form.querySelector("[data-dropzone]");
  const preview = form.querySelector("[data-preview]");
  const prompt = form.querySelector("[data-dropzone-text]");
  const fileName = form.querySelector("[data-file-name]");
  const submit = form.querySelector('button[type="submit"]');
  const maxBytes = Number(form.dataset.maxBytes) || Infinity;
  let file = null;
  // Nothing to send yet (without script the browser's own "required" check does this).
  submit.disabled = true;

  function choose(chosen) {
    showError("");
    if (!chosen) return;
    if (chosen.type && !chosen.type.startsWith("image/")) {
      showError(`${chosen.name} is not an image.`);
      return;
    }
    if (chosen.size > maxBytes) {
      showError(`${chosen.name} is ${formatSize(chosen.size)}; the limit is ${formatSize(maxBytes)}.`);
      return;
    }
    file = chosen;
    if (preview.src) URL.revokeObjectURL(preview.src);
    preview.src = URL.createObjectURL(file);
    preview.hidden = false;
    prompt.hidden = true;
    fileName.textContent = `${file.name} · ${formatSize(file.size)}`;
    fileName.hidden = false;
    submit.disabled = false;
  }

  input.addEventListener("change", () => choose(input.files[0]));

  for (const type of ["dragenter", "dragover"]) {
    dropzone.addEventListener(type, (event) => {
      event.preventDefault();
      dropzone.classList.add("is-dragging");
    });
  }
  for (const type of ["dragleave", "drop"]) {
    dropzone.addEventListener(type, () => dropzone.classList.remove("is-dragging"));
  }
  dropzone.addEventListener("drop", (event) => {
    event.preventDefault();
    const dropped = event.dataTransfer?.files;
    if (!dropped?.length) return;
    input.files = dropped; // keeps the form consistent with what is shown
    choose(dropped[0]);
  });

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (!file) return;
    const data = new FormData();
    data.append("file", file, file.name);
    data.append("source", "upload");
    submit.disabled = true;
    submit.classList.add("is-busy");
    try {
      onResult(await postForm(url, data));
    } catch (error) {
      // Not a digit: stored all the same; the result card says so and offers a correction.
      const refused = refusedPrediction(error);
      if (refused) onResult(refused);
      else showError(error instanceof ApiError ? error.message : String(error));
    } finally {
      submit.disabled = false;
      submit.classList.remove("is-busy");
    }
  });
}
