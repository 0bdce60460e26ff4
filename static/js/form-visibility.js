// Shows a form field only while the field it depends on has the given value (`visible_if`).
// The server applies the same rule (ui_builder/forms.py, `shown`): a hidden field is neither
// required nor passed to the script.

const TRUE_WORDS = ["true", "yes", "on", "1"];

function inputsOf(root, name) {
  return root.querySelectorAll(`[name="${name}"], [name$="-${name}"]`);
}

function shown(root, name, expected) {
  const inputs = [...inputsOf(root, name)];
  if (inputs.length === 1 && inputs[0].type === "checkbox" && !inputs[0].hasAttribute("value")) {
    return inputs[0].checked === TRUE_WORDS.includes(expected.trim().toLowerCase()); // a yes/no field
  }
  return inputs.some((input) =>
    (input.type === "checkbox" || input.type === "radio") ? input.checked && input.value === expected
                                                          : input.value === expected);
}

export function applyVisibility(root) {
  const visible = new Set();
  for (const wrapper of root.querySelectorAll("[data-field]")) {
    const dependsOn = wrapper.dataset.visibleIfField;
    const show = !dependsOn || (visible.has(dependsOn) && shown(root, dependsOn, wrapper.dataset.visibleIfValue));
    wrapper.hidden = !show;
    if (show) visible.add(wrapper.dataset.field);
  }
}

export function watchVisibility(root) {
  applyVisibility(root);
  root.addEventListener("input", () => applyVisibility(root));
  root.addEventListener("change", () => applyVisibility(root));
}

for (const root of document.querySelectorAll("[data-visibility-root]")) watchVisibility(root);
