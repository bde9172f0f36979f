// Progressive enhancement: a "Copy" button beside each read-only short link.
// Without JavaScript the button stays hidden and the field can be selected and
// copied by hand. Loaded as a file: the pages' security policy forbids inline
// scripts.
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  for (const button of document.querySelectorAll("button[data-copy]")) {
    const field = document.getElementById(button.dataset.copy);
    const status = document.getElementById(button.dataset.copy + "-status");
    if (!field || !navigator.clipboard) continue;
    button.hidden = false;
    button.addEventListener("click", async () => {
      try {
        await navigator.clipboard.writeText(field.value);
        if (status) status.textContent = "Copied to the clipboard.";
      } catch {
        field.select();
        if (status) status.textContent = "Press Ctrl+C (or ⌘C) to copy.";
      }
    });
  }
});
