"""``dmt-wrap demo`` for real: the Gradio app served on 127.0.0.1, driven by Debian's headless Chromium through
chromedriver; a synthetic clip is uploaded and its overlay comes back and decodes with its sound, and the page
asks nothing of any other server.

Skipped, saying which, only when Gradio, Selenium, chromium or chromedriver are absent; CI installs them
(``bash scripts/setup.sh --demo``). ``DMT_DEMO_SCREENSHOT=docs/demo.png`` keeps the page's screenshot.
"""
import io
import json
import os
import shutil
import socket
import urllib.request
from pathlib import Path
from urllib.parse import urlparse

import av
import numpy as np
import pytest
from PIL import Image

from dmt_wrap import DMTConfig, DualMeanTeacher
from dmt_wrap.cli import main
from dmt_wrap.pretrained import write_pretrained
from tests.registered_nets import BrightnessNet
from dmt_wrap.video import AudioTrack, write_video
from tests.synthetic_media import RATE, frame_at, make_video, make_wav, tone

# Gradio's queue calls pandas in ways pandas 3 deprecates: its noise, not ours
pytestmark = [pytest.mark.filterwarnings("ignore:'future.no_silent_downcasting' is deprecated"),
              pytest.mark.filterwarnings("ignore:The copy keyword is deprecated")]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-dev-shm-usage", "--window-size=1280,1400")
TIMEOUT = 120


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """An exported model whose map is the frame's brightness: it points at the moving square."""
    folder = tmp_path_factory.mktemp("demo") / "brightness-oracle"
    write_pretrained(DualMeanTeacher(BrightnessNet, DMTConfig(teachers=0)), folder, network="brightness",
                     network_kwargs={}, data={"image_size": 64, "sample_rate": 16000, "duration": 1.0})
    return folder


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_the_demo_command_is_listed_and_refuses_bad_arguments(exported, capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    assert "demo" in capsys.readouterr().out
    with pytest.raises(SystemExit) as usage:
        main(["demo", "--model", str(exported), "--max-upload-mb", "0"])
    assert usage.value.code == 2
    assert "--max-upload-mb 0.0: must be a positive number" in capsys.readouterr().err


def test_a_job_refuses_oversized_uploads_and_empty_forms_and_names_the_users_file(exported, tmp_path):
    gr = pytest.importorskip("gradio", reason="Gradio is the optional demo extra: pip install 'dmt_wrap[demo]'")
    from dmt_wrap.demo import DemoJob
    from dmt_wrap.localize import Localizer

    (tmp_path / "work").mkdir()
    job = DemoJob(Localizer.from_folder(exported), tmp_path / "work", max_upload_mb=0.001)
    upload = tmp_path / "gradio-upload-1234"
    upload.mkdir()
    clip = make_video(upload / "dog.mp4")
    with pytest.raises(gr.Error, match=r"the clip \(dog.mp4\) is 0.0 MB, over this demo's limit of 0.001 MB"):
        job(str(clip), None, None)
    job.max_upload_mb = 10
    with pytest.raises(gr.Error, match="Upload a clip with its sound, or an image and a sound"):
        job(None, str(clip), None)
    sound = make_wav(upload / "sound.wav")
    with pytest.raises(gr.Error) as refused:
        job(str(sound), None, None)
    assert refused.value.message.startswith("sound.wav: has no video stream")  # the user's name, not Gradio's folder
    overlay, sheet, maps, summary = job(str(clip), None, None)
    assert Path(overlay).is_file() and Path(sheet).is_file() and np.load(maps)["maps"].shape[0] == 8
    assert "8 frames of **dog.mp4**" in summary and "brightness-oracle" in summary


def _browser(tmp_path: Path):
    webdriver = pytest.importorskip("selenium.webdriver", reason="Selenium drives the browser: pip install "
                                    "'dmt_wrap[demo]'")
    if CHROMIUM is None or CHROMEDRIVER is None:
        pytest.skip("needs Debian's chromium and chromium-driver (bash scripts/setup.sh --demo installs them)")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'chromium-profile'}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"performance": "ALL"})  # every request the page makes
    return webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)


def h264_clip(path: Path, seconds: float = 3.0, fps: int = 10) -> Path:
    """The moving square as H.264 + AAC, which the browser previews, as most users' clips are."""
    frames = (frame_at(index / fps, seconds, 160, 120) for index in range(round(seconds * fps)))
    return write_video(path, frames, fps=fps, audio=AudioTrack(tone(seconds)[None], RATE, 0.0))


def _fetch(url: str) -> bytes:
    assert url.startswith("http://127.0.0.1:"), url  # everything the page shows comes from the local server
    with urllib.request.urlopen(url, timeout=30) as response:
        return response.read()


def test_upload_a_clip_in_headless_chromium_and_get_the_overlay_back(exported, tmp_path):
    pytest.importorskip("gradio", reason="Gradio is the optional demo extra: pip install 'dmt_wrap[demo]'")
    from dmt_wrap.demo import serve

    browser = _browser(tmp_path)
    app, url = serve(exported, port=free_port(), block=False, announce=lambda _: None)
    try:
        from selenium.webdriver.common.by import By
        from selenium.webdriver.support import expected_conditions as EC
        from selenium.webdriver.support.ui import WebDriverWait

        assert url.startswith("http://127.0.0.1:")
        assert app.max_file_size == 200 * 1024 * 1024
        assert all(fn.concurrency_limit == 1 for fn in app.fns.values())  # one job at a time
        clip = h264_clip(tmp_path / "square.mp4")
        browser.get(url)
        wait = WebDriverWait(browser, TIMEOUT)
        wait.until(EC.presence_of_element_located((By.CSS_SELECTOR, "#clip input[type=file]")))
        browser.find_element(By.CSS_SELECTOR, "#clip input[type=file]").send_keys(str(clip))
        wait.until(EC.presence_of_element_located((By.CSS_SELECTOR, "#clip video")))
        browser.find_element(By.CSS_SELECTOR, "#run").click()
        overlay = wait.until(lambda page: page.find_element(By.CSS_SELECTOR, "#overlay video").get_attribute("src")
                             if page.find_elements(By.CSS_SELECTOR, "#overlay video") else False)
        wait.until(lambda page: page.find_elements(By.CSS_SELECTOR, "#maps a")
                   and page.find_elements(By.CSS_SELECTOR, "#sheet img"))
        with av.open(io.BytesIO(_fetch(overlay))) as container:
            assert {stream.type for stream in container.streams} == {"video", "audio"}
            frames = [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]
        assert len(frames) == 12 and frames[0].shape[0] == 120 and frames[0].shape[1] > 160  # frame + colour bar
        maps = np.load(io.BytesIO(_fetch(browser.find_element(By.CSS_SELECTOR, "#maps a").get_attribute("href"))))
        assert maps["maps"].shape == (12, 48, 64)
        sheet = Image.open(io.BytesIO(_fetch(browser.find_element(By.CSS_SELECTOR, "#sheet img").get_attribute("src"))))
        assert sheet.width > 4 * 160 // 2
        assert "12 frames of" in browser.find_element(By.CSS_SELECTOR, "#summary").text
        requested = {json.loads(entry["message"])["message"]["params"]["request"]["url"]
                     for entry in browser.get_log("performance")
                     if '"Network.requestWillBeSent"' in entry["message"]}
        web = {address for address in requested if urlparse(address).scheme in ("http", "https", "ws", "wss")}
        assert web and {urlparse(address).hostname for address in web} == {"127.0.0.1"}, web  # never elsewhere
        shot = tmp_path / "demo.png"
        browser.save_screenshot(str(shot))
        assert np.ptp(np.asarray(Image.open(shot).convert("L"))) > 100  # a page was drawn
        if os.environ.get("DMT_DEMO_SCREENSHOT"):
            shutil.copyfile(shot, os.environ["DMT_DEMO_SCREENSHOT"])
    finally:
        browser.quit()
        app.close()
