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

// qk-atlas: a corpus file over the upload limit is refused by the upload box without a word; say so.
(function () {
  function check(files) {
    var box = document.getElementById('corpus-upload-box');
    var notice = document.getElementById('upload-notice');
    if (!box || !notice || !files || !files.length) { return; }
    var limit = Number(box.dataset.limit), file = files[0];
    if (file.size > limit) {
      notice.textContent = 'Upload refused: ' + file.name + ' is ' + (file.size / 1e6).toFixed(1) +
        ' MB, over the limit of ' + (limit / 1e6).toFixed(0) + ' MB (QK_ATLAS_MAX_UPLOAD_BYTES).';
      notice.className = 'alert alert-warning py-2 small';
    }
  }
  document.addEventListener('change', function (ev) {
    if (ev.target.closest && ev.target.closest('#corpus-upload-box')) { check(ev.target.files); }
  }, true);
  document.addEventListener('drop', function (ev) {
    if (ev.target.closest && ev.target.closest('#corpus-upload-box')) { check(ev.dataTransfer.files); }
  }, true);
})();

// qk-atlas: WebGL pictures are drawn at the screen's own pixel density. Plotly's default draws them at twice the
// page's pixels whatever the screen (plotGlPixelRatio 2): on a standard screen four times the pixels to fill, which a
// software renderer (headless Chromium's SwiftShader, a browser without GPU access) pays for in time. Set as Plotly
// loads (dcc.Graph loads it on demand), before any picture is drawn. A downloaded image keeps Plotly's own density:
// the download copies the graph's settings as it starts, so they carry that density for the click's moment only.
(function () {
  var EXPORT_RATIO = 2;
  function screenRatio() { return Math.min(4, Math.max(1, window.devicePixelRatio || 1)); }
  function configure(plotly) {
    if (plotly && plotly.setPlotConfig) { plotly.setPlotConfig({plotGlPixelRatio: screenRatio()}); }
    (window.qkPlotlyHooks || []).forEach(function (hook) { hook(plotly); });
  }
  var loaded = window.Plotly;
  if (loaded) {
    configure(loaded);
  } else {
    Object.defineProperty(window, 'Plotly', {configurable: true, enumerable: true,
      get: function () { return loaded; }, set: function (plotly) { loaded = plotly; configure(plotly); }});
  }
  document.addEventListener('click', function (ev) {
    var button = ev.target.closest && ev.target.closest('.modebar-btn[data-title^="Download plot"]');
    var gd = button && button.closest('.js-plotly-plot');
    if (!gd || !gd._context || !(gd._context.plotGlPixelRatio < EXPORT_RATIO)) { return; }
    var ratio = gd._context.plotGlPixelRatio;
    gd._context.plotGlPixelRatio = EXPORT_RATIO;
    setTimeout(function () { gd._context.plotGlPixelRatio = ratio; }, 0);
  }, true);
})();


// qk-atlas: the sentence view's token labels take the room a row has on screen. The server sizes them for the
// smallest picture the page draws (dashboard/figures/sentence.py, label_size) and says in each label trace's `meta`
// every how many rows one is written, the share of those rows a label's font may take and the largest it may grow to;
// a larger picture lets them grow, never below the server's size. Sized as the figure is handed to Plotly (react /
// newPlot), so a label is never drawn at one size and then another.
(function () {
  function fit(gd, figure) {
    var layout = figure && figure.layout, range = layout && layout.yaxis && layout.yaxis.range;
    if (!gd || !gd.closest || !gd.closest('#sentence-graph') || !figure.data || !range) { return; }
    var margin = layout.margin || {};
    var height = gd.clientHeight - (margin.t == null ? 100 : margin.t) - (margin.b == null ? 80 : margin.b);
    if (!(height > 0)) { return; }
    var rowPx = height / Math.abs(range[1] - range[0]);
    figure.data.forEach(function (trace) {
      var meta = trace.meta;
      if (!meta || !meta.label_every || !trace.textfont) { return; }
      var grown = Math.floor(meta.label_fill * meta.label_every * rowPx);
      var size = Math.max(meta.label_px, Math.min(meta.label_largest, grown));
      trace.textfont = Object.assign({}, trace.textfont, {size: size});
    });
  }
  function hook(plotly) {
    ['react', 'newPlot'].forEach(function (name) {
      var draw = plotly[name];
      if (!draw || draw.qkLabels) { return; }
      plotly[name] = function (gd, data, layout, config) {
        var element = typeof gd === 'string' ? document.getElementById(gd) : gd;
        if (data && !Array.isArray(data) && data.data) { fit(element, data); }  // (gd, figure)
        else if (Array.isArray(data)) { fit(element, {data: data, layout: layout}); }
        return draw.apply(this, arguments);
      };
      plotly[name].qkLabels = true;
    });
  }
  window.qkPlotlyHooks = (window.qkPlotlyHooks || []).concat([hook]);
  if (window.Plotly) { hook(window.Plotly); }
})();
