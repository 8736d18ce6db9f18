// The result card of the home page (markup in templates/_result.html): fills it in from
// an API answer, and sends corrections to the API without leaving the page.

import { ApiError, postJson } from "./api.js";

/** The model's answer in words, as the server says it (pages.py, answer). */
export function answerText(result) {
  return result.not_a_digit ? "Not a digit" : String(result.digit);
}

/** The input a result belongs to, as the server says it (pages.py, input_label). */
export function inputLabel(result) {
  if (result.source === "canvas") return "your drawing";
  if (result.filename) return `the file ${result.filename}`;
  return result.source === "upload" ? "an uploaded image" : "an image sent by a program";
}

/** What a person's answer did: picking the model's own digit confirms it (pages.py,
 * correction_text). */
function correctionText(saved, notADigit) {
  if (notADigit) return `corrected to ${saved.true_digit} (the model said it is not a digit)`;
  return saved.true_digit === saved.predicted_digit
    ? `confirmed as ${saved.true_digit}`
    : `corrected to ${saved.true_digit} (the model said ${saved.predicted_digit})`;
}

/** A probability as a percentage that never rounds a near-certainty up to 100%. */
export function percent(value) {
  if (value >= 1) return "100%";
  if (value > 0 && value < 0.001) return "<0.1%";
  return `${(Math.floor(value * 1000) / 10).toFixed(1)}%`;
}

export class ResultCard {
  constructor(card) {
    this.card = card;
    this.field = (name) => card.querySelector(`[data-field="${name}"]`);
    this.correction = card.querySelector("[data-correction]");
    this.status = card.querySelector("[data-correction-status]");
    this.correctionUrl = null;
    this.notADigit = false;
    this.correction.addEventListener("submit", (event) => this.#correct(event));
  }

  /** Shows a prediction as the API returns it (POST /api/v1/predictions). */
  show(result) {
    this.field("origin").textContent = `Result for ${inputLabel(result)}`;
    this.notADigit = result.not_a_digit;
    this.field("digit").textContent = answerText(result);
    this.field("digit").classList.toggle("is-not-a-digit", result.not_a_digit);
    this.field("not-a-digit").hidden = !result.not_a_digit;
    this.field("confidence").textContent = percent(result.confidence);
    // The server decides what is sure (domain.py, SURE_PROBABILITY): one rule everywhere.
    this.field("confidence").parentElement.classList.toggle("is-unsure", !result.sure);
    this.field("input").src = result.input_url;
    this.field("record").href = result.page_url;
    const top = result.not_a_digit ? "x" : String(result.digit);
    for (const row of this.card.querySelectorAll("[data-probabilities] li")) {
      // Rows 0-9, then "x" (not a digit), which records of older models lack.
      const index = row.dataset.digit === "x" ? 10 : Number(row.dataset.digit);
      const probability = result.probabilities[index];
      row.hidden = probability === undefined;
      row.querySelector("meter").value = probability ?? 0;
      row.querySelector(".prob-value").textContent = percent(probability ?? 0);
      row.classList.toggle("is-top", row.dataset.digit === top);
    }
    // Without script the form would post to the page's own route (with its CSRF token).
    this.correction.action = `${result.page_url}/correction`;
    this.correctionUrl = `${result.url}/correction`;
    this.#setStatus("");
    for (const button of this.correction.querySelectorAll("button")) {
      button.setAttribute("aria-pressed", "false");
      button.disabled = false;
    }
    this.card.querySelector("[data-result-empty]").hidden = true;
    this.card.querySelector("[data-result-body]").hidden = false;
    this.card.dataset.predictionId = result.id;
    // On a phone the card sits below the pad; bring it into view.
    const box = this.card.getBoundingClientRect();
    if (box.top > window.innerHeight * 0.6) {
      this.card.scrollIntoView({ behavior: "smooth", block: "start" });
    }
  }

  #setStatus(text, isError = false) {
    this.status.textContent = text;
    this.status.classList.toggle("is-error", isError);
  }

  async #correct(event) {
    if (!this.correctionUrl) return; // nothing shown yet: let the form do its default
    event.preventDefault();
    const digit = Number(event.submitter?.value);
    if (!Number.isInteger(digit)) return;
    const buttons = [...this.correction.querySelectorAll("button")];
    buttons.forEach((button) => (button.disabled = true));
    try {
      const saved = await postJson(this.correctionUrl, { digit });
      for (const button of buttons) {
        button.setAttribute("aria-pressed", String(Number(button.value) === saved.true_digit));
      }
      this.#setStatus(`Thank you: ${correctionText(saved, this.notADigit)}.`);
    } catch (error) {
      this.#setStatus(error instanceof ApiError ? error.message : String(error), true);
    } finally {
      buttons.forEach((button) => (button.disabled = false));
    }
  }
}
