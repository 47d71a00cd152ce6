// Behaviours any page may use, wired here because the Content-Security-Policy allows no
// inline script or handler (web/headers.py):
//   <button data-action="print">   prints the page;
//   <select data-autosubmit>       submits its form when the choice changes.
for (const button of document.querySelectorAll('[data-action="print"]')) {
  button.addEventListener("click", () => window.print());
}
for (const select of document.querySelectorAll("select[data-autosubmit]")) {
  select.addEventListener("change", () => select.form?.submit());
}
