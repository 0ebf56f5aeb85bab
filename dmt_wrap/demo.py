"""``dmt-wrap demo``: a local web page where a trained model localizes an uploaded clip, or an image and a sound.

Gradio (``pip install 'dmt_wrap[demo]'``) serves it on 127.0.0.1 unless told otherwise. It never
phones home: analytics and the version check are off, there is no share link, and the page uses
the browser's own fonts. Uploads over a stated size are refused, jobs run one at a time in a
queue with a progress bar, and each job calls ``dmt-wrap localize``'s own functions with its
limits: the same refusals, the same overlay video, contact sheet and maps.
"""
from __future__ import annotations

import atexit
import os
import shutil
import tempfile
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from ipaddress import ip_address
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .checkpoint import CheckpointError
from .datasets.media import DataError
from .localize import Localizer, localize_image, localize_video

if TYPE_CHECKING:
    import gradio

os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"  # read when gradio is imported: no usage reports, no version check

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 7860
DEFAULT_MAX_UPLOAD_MB = 200.0
QUEUE_SIZE = 16  # jobs waiting behind the running one before new ones are turned away
SYSTEM_FONTS = ("ui-sans-serif", "system-ui", "sans-serif")
MONO_FONTS = ("ui-monospace", "monospace")
MEGABYTE = 1024 * 1024


def import_gradio() -> Any:
    """``gradio``, or a ``ModuleNotFoundError`` that says how to install the demo extra."""
    try:
        import gradio
    except ModuleNotFoundError as exc:
        raise ModuleNotFoundError(f"the demo needs Gradio ({exc}); install it with pip install 'dmt_wrap[demo]' "
                                  "(or bash scripts/setup.sh --demo).") from None
    return gradio


@dataclass
class DemoJob:
    """One upload to its results: the overlay video (or image), the contact sheet, the maps and a summary.

    Called by Gradio with the uploaded files' paths; ``fps`` and the upload limit are the page's.
    Each job writes into a fresh folder under ``workdir`` and removes the previous job's (Gradio
    has copied its results by then: jobs run one at a time).
    """

    localizer: Localizer
    workdir: Path
    fps: float = 4.0
    max_upload_mb: float = DEFAULT_MAX_UPLOAD_MB

    def __call__(self, clip: str | None, image: str | None,
                 sound: str | None) -> tuple[str | None, str | None, str, str]:
        gr = import_gradio()
        uploads = {"clip": clip, "image": image, "sound": sound}
        for what, path in uploads.items():
            if path and os.path.getsize(path) > self.max_upload_mb * MEGABYTE:
                raise gr.Error(f"the {what} ({Path(path).name}) is {os.path.getsize(path) / MEGABYTE:.1f} MB, over "
                               f"this demo's limit of {self.max_upload_mb:g} MB (dmt-wrap demo --max-upload-mb).")
        if not clip and not (image and sound):
            raise gr.Error("Upload a clip with its sound, or an image and a sound.")
        for old in self.workdir.iterdir():
            shutil.rmtree(old, ignore_errors=True)
        job = Path(tempfile.mkdtemp(dir=self.workdir))
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                result = self._run(job, clip, image, sound)
            except (DataError, CheckpointError, FileNotFoundError, ValueError) as error:
                raise gr.Error(_readable(str(error), uploads)) from None
        for warning in caught:
            if issubclass(warning.category, UserWarning):  # localize's own (short audio, ...), not library noise
                gr.Warning(_readable(str(warning.message), uploads))
        return result

    def _run(self, job: Path, clip: str | None, image: str | None,
             sound: str | None) -> tuple[str | None, str | None, str, str]:
        spec, name = self.localizer.spec, self.localizer.name
        model = (f"model **{name}**: {spec.image_size} px frames, {spec.duration:g} s of "
                 f"{spec.sample_rate / 1000:g} kHz sound")
        if clip:
            summary = localize_video(self.localizer, clip, job / "overlay.mp4", fps=self.fps, audio_file=sound or None,
                                     npz=job / "maps.npz", sheet=job / "sheet.png")
            times = summary["times"]
            text = (f"{summary['frames']} frames of **{Path(clip).name}** at {self.fps:g} per second, "
                    f"t = {times[0]:.2f}-{times[-1]:.2f} s · {model}")
            return summary["video"], summary["sheet"], summary["npz"], text
        summary = localize_image(self.localizer, image, sound, job / "overlay.png", npz=job / "maps.npz")
        text = f"**{Path(image).name}** with the middle of **{Path(sound).name}** · {model}"
        return None, summary["png"], summary["npz"], text


def _readable(message: str, uploads: dict[str, str | None]) -> str:
    """``message`` with the upload folders Gradio made left out, so that it names the user's own files."""
    for path in uploads.values():
        if path:
            message = message.replace(str(Path(path).parent) + os.sep, "")
    return message


def build_app(job: DemoJob) -> "gradio.Blocks":
    """The page: a clip (or an image and a sound) in, the overlay, contact sheet and maps out; one job at a time."""
    gr = import_gradio()
    spec = job.localizer.spec

    def run(clip: str | None, image: str | None, sound: str | None,
            progress: Any = gr.Progress(track_tqdm=True)) -> tuple[str | None, str | None, str, str]:
        return job(clip, image, sound)  # Gradio draws localize's tqdm bar through the progress default

    with gr.Blocks(title="dmt-wrap demo", delete_cache=(3600, 3600)) as app:
        gr.Markdown(f"### Where is the sound? · {job.localizer.name}\n"
                    f"Upload a clip with its sound, or an image and a sound (at most {job.max_upload_mb:g} MB each). "
                    f"Frames are taken {job.fps:g} times a second, each with the {spec.duration:g} s of sound "
                    "around it; the brighter and more opaque the colour, the more confident the model that the "
                    "sound comes from there.")
        with gr.Row():
            with gr.Column():
                clip = gr.Video(label="clip (with its sound)", sources=["upload"], elem_id="clip")
                with gr.Row():
                    image = gr.Image(label="or an image", type="filepath", sources=["upload"], elem_id="image")
                    sound = gr.Audio(label="and a sound (also replaces a clip's own)", type="filepath",
                                     sources=["upload"], elem_id="sound")
                button = gr.Button("Localize", variant="primary", elem_id="run")
            with gr.Column():
                overlay = gr.Video(label="overlay (with the sound)", interactive=False, height=360, elem_id="overlay")
                sheet = gr.Image(label="contact sheet (an image: its overlay)", show_label=False, type="filepath",
                                 interactive=False, elem_id="sheet")  # the sheet's own caption names it
                maps = gr.File(label="maps (.npz)", interactive=False, elem_id="maps")
                summary = gr.Markdown(elem_id="summary")
        button.click(run, [clip, image, sound], [overlay, sheet, maps, summary], concurrency_limit=1)
    app.queue(default_concurrency_limit=1, max_size=QUEUE_SIZE)
    return app


def serve(model: str | os.PathLike, *, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT, fps: float = 4.0,
          max_upload_mb: float = DEFAULT_MAX_UPLOAD_MB, device: str | None = None, block: bool = True,
          announce: Callable[[str], None] = print) -> tuple["gradio.Blocks", str]:
    """Load the exported ``model`` and serve the demo at ``host:port``; returns the app and its address.

    ``block=False`` returns once the server is up (call ``app.close()`` to stop it).
    """
    if not fps > 0:
        raise ValueError(f"--fps {fps}: must be positive.")
    if not max_upload_mb > 0:
        raise ValueError(f"--max-upload-mb {max_upload_mb}: must be positive.")
    gr = import_gradio()
    localizer = Localizer.from_folder(model, device=device)
    workdir = Path(tempfile.mkdtemp(prefix="dmt-wrap-demo-"))
    atexit.register(shutil.rmtree, workdir, ignore_errors=True)  # the jobs' results go with the process
    app = build_app(DemoJob(localizer, workdir, fps=fps, max_upload_mb=max_upload_mb))
    if not _loopback(host):
        announce(f"dmt-wrap demo: warning: --host {host} lets other machines reach the demo and upload to it.")
    theme = gr.themes.Default(font=list(SYSTEM_FONTS), font_mono=list(MONO_FONTS))
    _, url, _ = app.launch(server_name=host, server_port=port, share=False, max_file_size=f"{max_upload_mb:g}mb",
                           allowed_paths=[str(workdir)], prevent_thread_lock=True, quiet=True, show_error=True,
                           ssr_mode=False, pwa=False, mcp_server=False, enable_monitoring=False, theme=theme)
    announce(f"dmt-wrap demo: {localizer.name} at {url} (Ctrl+C stops it)")
    if block:
        app.block_thread()
    return app, url


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ip_address(host).is_loopback
    except ValueError:
        return False
