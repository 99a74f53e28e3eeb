# ruff: noqa: E501 - the checks are JavaScript source, kept readable as JavaScript
"""What every page must pass in Chromium on a phone: readable text on charts and forms, no sideways scrolling.

Run as JavaScript in the page; each returns a list of problems (empty when the page passes), so a
failure names the element and the figure.
"""

MIN_TEXT_PX = 11

# Text on a chart (SVG <text>, scaled with the drawing) or in a form, in CSS px as rendered.
SMALL_TEXT = """(minPx) => {
  const problems = [];
  const describe = (el) => `${el.tagName.toLowerCase()}${el.id ? '#' + el.id : ''}.${el.getAttribute('class') || ''} "${(el.textContent || el.value || '').trim().slice(0, 30)}"`;
  const visible = (el) => { const r = el.getBoundingClientRect(); return r.width > 0 && r.height > 0 && getComputedStyle(el).visibility !== 'hidden'; };
  for (const text of document.querySelectorAll('svg.chart text')) {
    if (!visible(text) || !text.textContent.trim()) continue;
    const m = text.getScreenCTM();
    const px = parseFloat(getComputedStyle(text).fontSize) * Math.hypot(m.a, m.b);
    if (px < minPx) problems.push(`${describe(text)} is ${px.toFixed(1)} px`);
  }
  for (const form of document.querySelectorAll('main form')) {
    for (const el of [form, ...form.querySelectorAll('*')]) {
      if (el.closest('.visually-hidden') || !visible(el)) continue;
      const ownText = [...el.childNodes].some((n) => n.nodeType === 3 && n.textContent.trim());
      if (!ownText && !['INPUT', 'TEXTAREA', 'SELECT', 'BUTTON'].includes(el.tagName)) continue;
      if (el.type === 'hidden') continue;
      const px = parseFloat(getComputedStyle(el).fontSize);
      if (px < minPx) problems.push(`${describe(el)} is ${px.toFixed(1)} px`);
    }
  }
  return problems;
}"""

# Anything wider than the viewport, outside a scroll container that says so: data-scrolls="x" and an
# aria-describedby hint that is visible.
OVERFLOW = """() => {
  const problems = [];
  const root = document.documentElement;
  const width = root.clientWidth;
  if (root.scrollWidth > width) problems.push(`the page is ${root.scrollWidth} px wide in a ${width} px viewport`);
  for (const el of document.body.querySelectorAll('*')) {
    if (el.closest('.skip-link, .visually-hidden, noscript, title, desc')) continue;
    const scroller = el.parentElement && el.parentElement.closest('[data-scrolls="x"]');
    if (scroller) continue;
    const r = el.getBoundingClientRect();
    if (r.width === 0 || r.height === 0) continue;
    if (r.right > width + 0.5 || r.left < -0.5) {
      problems.push(`${el.tagName.toLowerCase()}.${el.getAttribute('class') || ''} spans ${r.left.toFixed(0)}..${r.right.toFixed(0)} px`);
    }
  }
  for (const scroller of document.querySelectorAll('[data-scrolls="x"]')) {
    if (scroller.scrollWidth <= scroller.clientWidth) continue;
    const hint = document.getElementById(scroller.getAttribute('aria-describedby') || '');
    if (!hint || hint.getBoundingClientRect().height === 0) problems.push(`${scroller.className} scrolls without a visible hint`);
  }
  return problems;
}"""

# No two labels of one chart overlap, and the fitted line does not cross the patient's value label.
CHART_COLLISIONS = """() => {
  const problems = [];
  const overlap = (a, b) => a.left < b.right - 0.5 && b.left < a.right - 0.5 && a.top < b.bottom - 0.5 && b.top < a.bottom - 0.5;
  for (const chart of document.querySelectorAll('svg.chart')) {
    const texts = [...chart.querySelectorAll('text')].filter((t) => t.textContent.trim());
    const boxes = texts.map((t) => t.getBoundingClientRect());
    for (let i = 0; i < boxes.length; i++) for (let j = i + 1; j < boxes.length; j++) {
      if (overlap(boxes[i], boxes[j])) problems.push(`${chart.id}: "${texts[i].textContent}" overlaps "${texts[j].textContent}"`);
    }
    const label = chart.querySelector('.patient-label');
    const line = chart.querySelector('.fit-line');
    if (!label || !line) continue;
    const m = line.getScreenCTM();
    const at = (x, y) => [m.a * x + m.c * y + m.e, m.b * x + m.d * y + m.f];
    const [x1, y1] = at(+line.getAttribute('x1'), +line.getAttribute('y1'));
    const [x2, y2] = at(+line.getAttribute('x2'), +line.getAttribute('y2'));
    const box = label.getBoundingClientRect();
    // Sample the segment: any point inside the label's box is a crossing.
    for (let k = 0; k <= 400; k++) {
      const x = x1 + (x2 - x1) * k / 400, y = y1 + (y2 - y1) * k / 400;
      if (x > box.left && x < box.right && y > box.top && y < box.bottom) { problems.push(`${chart.id}: the fitted line crosses the patient label`); break; }
    }
  }
  return problems;
}"""
