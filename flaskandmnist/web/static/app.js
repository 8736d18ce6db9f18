// On every page: show server times (UTC in the HTML) in the reader's own time zone.

const absolute = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "medium" });
const relative = new Intl.RelativeTimeFormat(undefined, { numeric: "auto" });

const STEPS = [
  [60, "second"],
  [60, "minute"],
  [24, "hour"],
];

/** "3 minutes ago" for times within the last day, else null. */
function ago(date) {
  // A clock a little ahead of the server's must not say "in 2 seconds".
  let amount = Math.min(0, (date.getTime() - Date.now()) / 1000);
  for (const [size, unit] of STEPS) {
    if (Math.abs(amount) < size) {
      return relative.format(Math.round(amount), unit);
    }
    amount /= size;
  }
  return null;
}

for (const element of document.querySelectorAll("time[datetime]")) {
  const date = new Date(element.dateTime);
  if (Number.isNaN(date.getTime())) continue;
  const full = absolute.format(date);
  element.title = full;
  element.textContent = (element.hasAttribute("data-relative") && ago(date)) || full;
}
