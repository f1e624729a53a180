"""One label per track from the evidence of its frames: the mean calibrated log-probability."""

import numpy as np
import pytest

from regionspot.video.labels import TrackEvidence


def test_mean_log_probability_picks_the_label_and_absent_frames_add_nothing():
    evidence = TrackEvidence(tracks=2, classes=3)
    log = np.log
    evidence.add(log(np.array([[0.6, 0.3, 0.1], [0.2, 0.2, 0.6]])), np.array([True, False]))
    evidence.add(log(np.array([[0.1, 0.8, 0.1], [0.3, 0.3, 0.4]])), np.array([True, False]))
    ids, confidence = evidence.labels()
    # track 0: geometric means 0.245, 0.490, 0.1 -> class 1 although frame 1 alone says class 0
    assert ids.tolist() == [1, -1] and evidence.frames.tolist() == [2, 0]
    means = np.exp((log(np.array([0.6, 0.3, 0.1])) + log(np.array([0.1, 0.8, 0.1]))) / 2)
    assert confidence[0] == pytest.approx(means[1] / means.sum()) and confidence[1] == 0


def test_evidence_round_trips_through_json_exactly():
    import json

    evidence = TrackEvidence(2, 4)
    evidence.add(np.log(np.random.default_rng(0).dirichlet(np.ones(4), size=2)), np.array([True, True]))
    back = TrackEvidence.from_dict(json.loads(json.dumps(evidence.to_dict())))
    assert np.array_equal(back.sums, evidence.sums) and np.array_equal(back.frames, evidence.frames)
