// twin3d's browser view: the few things the page does by itself (no data, no secrets).
// Each page has its own id, so the server can place labels for this page's camera.
(function () {
  const id = Math.random().toString(36).slice(2, 12);
  let playing = null;
  let reported = false;

  function view(trame, ref) {
    return trame.refs[ref];
  }

  function size(v) {
    const el = v.vtkContainer;
    return [el.clientWidth, el.clientHeight];
  }

  // Tell the server this page's camera and canvas size (it places the labels for them).
  function report(trame, ref) {
    const v = view(trame, ref);
    if (!v || !reported) return;  // no scene (and no camera) before the first one loaded
    trame.state.set("twin3d_moving", false);
    trame.trigger("twin3d_camera", [id, v.getCamera(), size(v)]);
  }

  // A scene update finished loading here: tell the server (it paces updates by this), and
  // place this page's labels once its first scene (and camera) arrived.
  function loaded(trame, ref) {
    trame.trigger("twin3d_loaded", [id]);
    if (!reported) {
      reported = true;
      report(trame, ref);
    }
  }

  function moving(trame) {
    trame.state.set("twin3d_moving", true);
  }

  function setCamera(trame, ref, camera) {
    stop();
    const v = view(trame, ref);
    if (!v || !camera) return;
    v.setCamera(camera);
    report(trame, ref);
  }

  function stop() {
    if (playing !== null) {
      cancelAnimationFrame(playing.frame);
      playing = null;
    }
  }

  // Fly this page's camera along a path: {position: [[x,y,z]...], focalPoint: [...],
  // viewUp: [x,y,z], viewAngle: deg, fps: n}.
  function play(trame, ref, path) {
    stop();
    const v = view(trame, ref);
    if (!v || !path) return;
    moving(trame);
    const t0 = performance.now();
    const n = path.position.length;
    const step = () => {
      const k = Math.min(n - 1, Math.floor((performance.now() - t0) / 1000 * path.fps));
      v.setCamera({position: path.position[k], focalPoint: path.focalPoint[k],
                   viewUp: path.viewUp, viewAngle: path.viewAngle});
      if (k < n - 1) {
        playing.frame = requestAnimationFrame(step);
      } else {
        playing = null;
        report(trame, ref);
      }
    };
    playing = {frame: requestAnimationFrame(step)};
  }

  window.twin3d = {id, loaded, report, moving, setCamera, play, stop};
})();
