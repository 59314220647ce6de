// Output text wraps to its box, so that no one scrolls sideways to read a line of a log or a
// self-check's feedback. Aligned columns (a table printed with spaces) keep their lines: they
// are marked nl-columns, fit a desktop's column, and scroll in their box on a narrow screen.
document.addEventListener("DOMContentLoaded", () => {
  for (const pre of document.querySelectorAll("div.cell_output pre, div.output pre")) {
    const lines = pre.textContent.split("\n").filter((line) => line.trim());
    const aligned = lines.filter((line) => /\S {2,}\S/.test(line.trim())).length;
    if (lines.length >= 2 && aligned >= Math.max(2, lines.length / 2)) {
      pre.classList.add("nl-columns");
    }
  }
});
