// Making the page fit its reader's screen, without scrolling sideways where it can be helped.
//
// Output text wraps to its box (CSS), so that no one scrolls to read a line of a log or a
// self-check's feedback. Aligned columns (a table printed with spaces) keep their lines: they are
// marked nl-columns, fit a desktop's column, and scroll in their box on a narrow screen.
function markColumns() {
  for (const pre of document.querySelectorAll("div.cell_output pre, div.output pre")) {
    const lines = pre.textContent.split("\n").filter((line) => line.trim());
    const aligned = lines.filter((line) => /\S {2,}\S/.test(line.trim())).length;
    if (lines.length >= 2 && aligned >= Math.max(2, lines.length / 2)) {
      pre.classList.add("nl-columns");
    }
  }
}

// A display equation wider than the column is set smaller, down to 70% of the text's size, so
// that most fit a phone; one that still does not fit scrolls in its own box (CSS).
const SMALLEST = 0.7;
function fitEquations() {
  for (const math of document.querySelectorAll('mjx-container[display="true"]')) {
    math.style.fontSize = "";
    const box = math.parentElement;
    const wide = math.scrollWidth, room = box.clientWidth;
    if (wide > room && room > 0) {
      math.style.fontSize = `${Math.max(SMALLEST, room / wide) * 100}%`;
    }
  }
}

document.addEventListener("DOMContentLoaded", () => {
  markColumns();
  const typeset = window.MathJax && window.MathJax.startup && window.MathJax.startup.promise;
  if (typeset) {
    typeset.then(fitEquations);
  } else {
    window.addEventListener("load", () => {
      const later = window.MathJax && window.MathJax.startup && window.MathJax.startup.promise;
      (later || Promise.resolve()).then(fitEquations);
    });
  }
  let resized;
  window.addEventListener("resize", () => {
    clearTimeout(resized);
    resized = setTimeout(fitEquations, 150);
  });
});
