// qk-atlas: a click on empty space in the single view clears the selection.
// Plotly emits plotly_click only when a point is under the mouse; a press and release on the plot area that
// did not move (not a pan) and produced no point click therefore means "empty space". Plotly covers the page
// with a drag layer while the button is down, so the press target decides, not the release target.
(function () {
  var lastPointClick = 0, downAt = null;
  function graph() { return document.querySelector('#single-graph .js-plotly-plot'); }
  function watch(gd) {
    if (gd && !gd.__qkWatched && gd.on) {
      gd.__qkWatched = true;
      gd.on('plotly_click', function () { lastPointClick = Date.now(); });
    }
  }
  document.addEventListener('mousedown', function (ev) {
    watch(graph());
    var inPlot = ev.button === 0 && ev.target.closest && ev.target.closest('#single-graph .nsewdrag');
    downAt = inPlot ? [ev.clientX, ev.clientY, Date.now()] : null;
  }, true);
  document.addEventListener('mouseup', function (ev) {
    if (!downAt) { return; }
    var moved = Math.abs(ev.clientX - downAt[0]) + Math.abs(ev.clientY - downAt[1]);
    var pressed = downAt[2];
    downAt = null;
    if (moved > 4) { return; }  // a pan, not a click
    setTimeout(function () {
      if (lastPointClick < pressed) {
        var clear = document.getElementById('clear-selection');
        if (clear) { clear.click(); }
      }
    }, 150);
  }, true);
})();
