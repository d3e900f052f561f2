"""A two-sample test: can a small classifier tell generated music from the collection?

Both sets are cut into windows of a few bars; each window becomes features
that do not change when the music is transposed (density, silence, polyphony,
note lengths, its pitch classes counted from its own best-fitting tonic, the
intervals between notes sounding together, its range). A logistic regression
(scikit-learn) learns from the windows of half the pieces of each set and is
scored on the windows of the other half, then the halves swap: its held-out
accuracy is 0.5 when the sets cannot be told apart and 1.0 when they always
can. Pieces, not windows, are split, so that no piece is on both sides;
classes are balanced on each side, so 0.5 is chance.

    result = two_sample_test(generated_rolls, reference_rolls, window_steps=64)
    result["accuracy"]
"""

import numpy as np

from biax_keras.errors import UserError

# Of the figures per window, the histograms are normalized to shares.
_MIN_WINDOWS = 4  # per set and side; fewer cannot be scored


def window_features(roll, lowest_pitch=0):
    """The transposition-invariant features of one window of a roll (a 1-D array)."""
    from biax_keras.music import statistics

    counts = statistics.piece_counts(roll, lowest_pitch)
    steps = max(counts.steps, 1)

    def shares(values):
        values = np.asarray(values, np.float64)
        total = values.sum()
        return values / total if total else values

    span = 0.0 if counts.lowest is None else (counts.highest - counts.lowest) / 48.0
    return np.concatenate([
        [counts.in_key.sum() / steps, counts.sounding_notes / steps,
         counts.polyphony[0] / steps, span],
        shares(counts.polyphony), shares(counts.note_lengths), shares(counts.in_key),
        shares(counts.intervals)])


def windows(rolls, window_steps, lowest_pitch=0):
    """`(features (W, F), piece index (W,))` of every whole window of every roll."""
    features, pieces = [], []
    for index, roll in enumerate(rolls):
        for start in range(0, len(roll) - window_steps + 1, window_steps):
            features.append(window_features(roll[start:start + window_steps], lowest_pitch))
            pieces.append(index)
    if not features:
        return np.zeros((0, 0)), np.zeros(0, np.int64)
    return np.stack(features), np.asarray(pieces)


def two_sample_test(generated, reference, window_steps, lowest_pitch=0, seed=0):
    """Held-out accuracy of a classifier telling generated windows from reference ones.

    Args:
        generated, reference: lists of rolls with the same `lowest_pitch`.
        window_steps: steps of a window (a few bars).
        lowest_pitch: MIDI pitch of the rolls' note 0.
        seed: of the split of pieces into halves and of the class balancing.

    Returns:
        A JSON-able dict: `accuracy` (mean over the two folds), `folds`
        (each fold's), `windows` (scored, both classes and folds together),
        `window_steps`.

    Raises:
        UserError: too few pieces or windows to hold any out.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    rng = np.random.default_rng(seed)
    sets = []
    for name, rolls in (("generated", generated), ("reference", reference)):
        features, pieces = windows(rolls, window_steps, lowest_pitch)
        if len(rolls) < 2 or len(features) < 2 * _MIN_WINDOWS:
            raise UserError(f"the two-sample test needs at least 2 {name} pieces with "
                            f"{2 * _MIN_WINDOWS} windows of {window_steps} steps between them, "
                            f"got {len(rolls)} pieces and {len(features)} windows")
        half = rng.permutation(len(rolls)) % 2  # each piece's fold
        sets.append((features, half[pieces]))

    scores, scored = [], 0
    for fold in (0, 1):
        sides = {}
        for side in ("train", "test"):
            chosen = []
            for label, (features, halves) in enumerate(sets):
                mask = halves == fold if side == "test" else halves != fold
                chosen.append((features[mask], label))
            size = min(len(f) for f, _ in chosen)
            if size < _MIN_WINDOWS:
                raise UserError(f"too few windows of {window_steps} steps to hold half of the "
                                f"pieces out ({size}); give more or longer pieces")
            x = np.concatenate([f[rng.choice(len(f), size, replace=False)] for f, _ in chosen])
            y = np.concatenate([np.full(size, label) for _, label in chosen])
            sides[side] = (x, y)
        classifier = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, C=1.0))
        classifier.fit(*sides["train"])
        x, y = sides["test"]
        scores.append(float(np.mean(classifier.predict(x) == y)))
        scored += len(y)
    return {"accuracy": float(np.mean(scores)), "folds": scores, "windows": scored,
            "window_steps": int(window_steps)}
