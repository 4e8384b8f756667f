// qk-atlas: a click on empty space in the single view clears the selection.
// Plotly emits plotly_click only when a point is under the mouse; a DOM click on the plot area with no
// point click just before it (and no drag) therefore means "empty space".
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
    downAt = [ev.clientX, ev.clientY];
  }, true);
  document.addEventListener('click', function (ev) {
    var area = ev.target.closest && ev.target.closest('#single-graph .nsewdrag');
    if (!area || !downAt) { return; }
    var moved = Math.abs(ev.clientX - downAt[0]) + Math.abs(ev.clientY - downAt[1]);
    if (moved > 4) { return; }  // a pan, not a click
    setTimeout(function () {
      if (Date.now() - lastPointClick > 300) {
        var clear = document.getElementById('clear-selection');
        if (clear) { clear.click(); }
      }
    }, 60);
  });
})();
