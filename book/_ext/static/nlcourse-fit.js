// Making the page fit its reader's screen, without scrolling sideways where it can be helped.
//
// Output text wraps to its box (CSS), so that no one scrolls to read a line of a log or a
// self-check's feedback. Aligned columns (a table printed with spaces) keep their lines: they are
// marked nl-columns, fit a desktop's column, and scroll in their box on a narrow screen. The
// lines of prose around such a table (a title, the file it was read from) still wrap: each goes
// into a block of its own that wraps.
const ALIGNED = /\S {2,}\S/;
function markColumns() {
  for (const pre of document.querySelectorAll("div.cell_output pre, div.output pre")) {
    const lines = pre.textContent.split("\n").filter((line) => line.trim());
    const aligned = lines.filter((line) => ALIGNED.test(line.trim())).length;
    if (lines.length >= 2 && aligned >= Math.max(2, lines.length / 2)) {
      pre.classList.add("nl-columns");
      if (![...pre.querySelectorAll("*")].some((e) => e.className || e.children.length)) {
        wrapProse(pre);     // plain text (Pygments leaves an empty span), no colours to keep
      }
    }
  }
}

function wrapProse(pre) {
  const text = pre.textContent;
  pre.textContent = "";
  const lines = text.split("\n");
  lines.forEach((line, i) => {
    const last = i === lines.length - 1;
    if (line.trim() && !ALIGNED.test(line.trim())) {
      const block = document.createElement("span");
      block.className = "nl-prose";
      block.textContent = line;
      pre.append(block);
      if (!last) {
        return;       // the block ends its own line
      }
    } else {
      pre.append(document.createTextNode(line + (last ? "" : "\n")));
    }
  });
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
