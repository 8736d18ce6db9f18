// Calls to the JSON API (/api/v1, same origin; CSRF-exempt, so no token is sent).

/** An error whose message is meant for the person using the page; `body` is the API's
 * answer, if any (a "not a digit" answer holds the stored prediction). */
export class ApiError extends Error {
  constructor(message, body = null) {
    super(message);
    this.body = body;
  }
}

async function send(url, init) {
  let response;
  try {
    response = await fetch(url, { ...init, headers: { Accept: "application/json", ...init.headers } });
  } catch {
    throw new ApiError("The server cannot be reached. Check the connection and try again.");
  }
  let body = null;
  try {
    body = await response.json();
  } catch {
    // Not JSON (a proxy's error page, say): the status line below is all there is to tell.
  }
  if (!response.ok) {
    const message = body?.error?.message;
    throw new ApiError(
      message || `The server answered ${response.status} ${response.statusText}.`,
      body,
    );
  }
  return body;
}

/** The stored prediction of an answer that refused it as not a digit, or null. */
export function refusedPrediction(error) {
  return error instanceof ApiError && error.body?.error?.code === "not_a_digit"
    ? error.body.prediction
    : null;
}

/** POST a JSON body; resolves to the parsed JSON answer. */
export function postJson(url, data) {
  return send(url, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(data),
  });
}

/** POST a multipart form; resolves to the parsed JSON answer. */
export function postForm(url, formData) {
  return send(url, { method: "POST", body: formData, headers: {} });
}
