// The admin's form builder: re-renders the preview from the unsaved editor as the admin types.
import { watchVisibility } from "./form-visibility.js";

const preview = document.getElementById("form-preview");
const editor = document.querySelector("#content-main form");
let timer = null;
let latest = 0;

async function refresh() {
  const ticket = ++latest;
  const response = await fetch(preview.dataset.previewUrl, { method: "POST", body: new FormData(editor) });
  if (ticket !== latest) return; // a newer edit is on its way
  preview.innerHTML = response.ok ? await response.text() : "<p>The preview could not be made.</p>";
  const root = preview.querySelector("[data-visibility-root]");
  if (root) watchVisibility(root);
}

function soon() {
  clearTimeout(timer);
  timer = setTimeout(refresh, 250);
}

editor.addEventListener("input", soon);
editor.addEventListener("change", soon);
// Adding or removing an inline field changes the form without an input event.
new MutationObserver(soon).observe(editor, { childList: true, subtree: true });
refresh();
