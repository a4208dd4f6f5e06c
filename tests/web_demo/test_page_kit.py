"""The same TypeScript trainer in a web page: headless Chromium on onnxruntime-web's WebAssembly build
passes the conformance kits (artifact and kit fetched over HTTP, as a page would), with one WASM thread
and with two (the page is cross-origin isolated), and reports a kit it does not match."""
import numpy as np
import pytest

from edgetune.app.web import serve
from helpers.kits import artifact_of, tampered_copy
from helpers.web import CHROMIUM, WEB, browse

ARTIFACTS = [("tiny_artifact", 1), ("tiny_int8_artifact", 1), ("tiny_int4_artifact", 1), ("zo_artifact", 1), ("tiny_lm", 2),
             ("shared_weights_artifact", 1), pytest.param("minilm_artifact", 2, marks=pytest.mark.slow)]


@pytest.fixture(scope="module")
def page(node_trainer):
    """kit.html's URL for an artifact and a kit directory (the build is the node_trainer fixture's)."""
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium), which .ci/run installs")

    def replay(art, kit, threads=1):
        with serve({"web": WEB / "dist" / "web", "art": art, "kit": kit}) as base:
            return browse(f"{base}web/kit.html?artifact=/art/&kit=/kit/&threads={threads}")
    return replay


@pytest.mark.parametrize("fixture, threads", ARTIFACTS)
def test_the_page_passes_the_kit_on_onnxruntime_web(request, kits, page, fixture, threads):
    art, manifest, _ = artifact_of(request, fixture)
    report = page(art, kits(request, fixture), threads)
    assert report["failures"] == [], report["failures"][:5]
    assert report["cases"] == ["train", "resume", "nonfinite"]
    assert report["checks"] >= 6 * (len(manifest.state_specs()) + 2) + 1


def test_a_kit_the_page_does_not_match_is_reported(request, kits, page, tmp_path):
    art, _, _ = artifact_of(request, "tiny_artifact")
    kit = tampered_copy(kits(request, "tiny_artifact"), tmp_path / "kit", "train/3/state/param.",
                        lambda a: a + 1e-2 * (np.abs(a).max() + 1))
    report = page(art, kit)
    assert any(f.startswith("train step 3: param.") for f in report["failures"]), report["failures"]
