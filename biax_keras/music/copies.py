"""The copy check: the longest passage of a generated piece found verbatim,
in any transposition, in a reference piece.

Steps are compared by the shape of what plays (the pitches relative to the
lowest note sounding), so a passage transposed as a whole still matches;
silent steps never match. A suffix array over all pieces finds the longest
common run in time linear in the steps, up to a log factor.
"""

import dataclasses

import numpy as np

from biax_keras.music.representation import play_and_onsets

# The copy check reports lengths in bars of 4 quarter notes.
QUARTERS_PER_BAR = 4


@dataclasses.dataclass(frozen=True)
class CopyMatch:
    """The longest passage of a generated piece found in a reference piece.

    Attributes:
        length: the passage's length in steps; 0 when no sounding step of any
            generated piece occurs in any reference piece.
        generated_index, reference_index: which pieces (positions in the
            lists given), None when `length` is 0.
        generated_start, reference_start: first step of the passage in each.
        transposition: semitones to add to the generated passage to get the
            reference passage.
        per_piece: the longest copied run of each generated piece, in steps.
    """

    length: int
    generated_index: int | None
    reference_index: int | None
    generated_start: int | None
    reference_start: int | None
    transposition: int | None
    per_piece: tuple = ()


def _step_shapes(play_rows):
    """For each step: lowest sounding note, and its chord shifted down to it.

    Returns:
        `(sounding, lowest, shape)`: bool `(steps,)`, int64 `(steps,)` (0
        where silent) and uint64 `(steps, words)`, the bits of the sounding
        notes relative to the lowest (all zero where silent).
    """
    steps, notes = play_rows.shape
    sounding = play_rows.any(axis=1)
    lowest = np.where(sounding, np.argmax(play_rows, axis=1), 0)
    columns = lowest[:, None] + np.arange(notes)[None, :]
    inside = columns < notes
    relative = np.take_along_axis(play_rows, np.minimum(columns, notes - 1), axis=1) & inside
    packed = np.packbits(relative, axis=1)
    # Whole 64-bit words make fewer, cheaper columns to sort.
    words = np.zeros((steps, -(-packed.shape[1] // 8) * 8), np.uint8)
    words[:, : packed.shape[1]] = packed
    return sounding, lowest, words.view(np.uint64)


def _dense_ids(rows):
    """Equal rows of a 2-D integer array get equal ids 0..k-1."""
    n = rows.shape[0]
    if n == 0:
        return np.zeros(0, np.int64)
    # A lexsort over columns: several times faster than np.unique(axis=0),
    # which sorts the rows as opaque byte strings.
    order = np.lexsort(rows.T[::-1])
    ordered = rows[order]
    ids = np.empty(n, np.int64)
    ids[order] = np.concatenate([[0], np.cumsum(np.any(ordered[1:] != ordered[:-1], axis=1))])
    return ids


def _suffix_ranks(tokens):
    """Prefix doubling: ranks of every suffix's first 1, 2, 4, ... tokens.

    Returns:
        A list whose entry `j` is an int64 array giving equal values exactly
        to positions whose next `2**j` tokens are equal (shorter when they run
        past the end). The last entry gives every position its own rank, so
        its `argsort` is the suffix array.
    """
    n = tokens.size
    rank = np.unique(tokens, return_inverse=True)[1].astype(np.int64)
    ranks = [rank]
    k = 1
    # Once k >= n every suffix is shorter than k and so already unique: the
    # loop ends before the shift runs off the array.
    while n and rank.max() < n - 1:
        second = np.full(n, -1, np.int64)
        second[: n - k] = rank[k:]
        order = np.lexsort((second, rank))
        first_sorted, second_sorted = rank[order], second[order]
        change = np.zeros(n, np.int64)
        change[1:] = (first_sorted[1:] != first_sorted[:-1]) | (second_sorted[1:] != second_sorted[:-1])
        rank = np.empty(n, np.int64)
        rank[order] = np.cumsum(change)
        ranks.append(rank)
        k *= 2
    return ranks


def _common_prefix_lengths(ranks, a, b):
    """Length of the common prefix of the suffixes at `a` and at `b` (arrays)."""
    n = ranks[0].size
    length = np.zeros(a.shape, np.int64)
    # The last level separates every suffix, so the answer is below its length
    # and is a sum of the shorter powers of two, found greedily from the top.
    for level in range(len(ranks) - 2, -1, -1):
        i, j = a + length, b + length
        ok = (i < n) & (j < n)
        ci, cj = np.minimum(i, n - 1), np.minimum(j, n - 1)
        equal = ok & (ranks[level][ci] == ranks[level][cj])
        length[equal] += 1 << level
    return length


def _segmented_running_min(values, starts):
    """Running minimum of `values` that restarts at every True in `starts`."""
    segment = np.cumsum(starts)
    big = int(values.max(initial=0)) + 1
    # Earlier segments are lifted above every later value, so the running
    # minimum of a segment never reaches back into the one before it.
    offset = (segment[-1] - segment).astype(np.int64) * big
    return np.minimum.accumulate(values + offset) - offset


def _nearest_reference_lcp(lcp, is_reference):
    """For each entry in suffix-array order: longest common prefix with the
    nearest reference suffix above it (0 if none)."""
    n = is_reference.size
    best = np.zeros(n, np.int64)
    if n < 2:
        return best
    # Entry i's common prefix with entry j < i is min(lcp[j..i-1]), so the
    # running minimum restarts after every reference entry.
    after_reference = is_reference[:-1]
    seen = np.cumsum(after_reference) > 0
    best[1:] = np.where(seen, _segmented_running_min(lcp, after_reference), 0)
    return best


def longest_copied_run(generated_rolls, reference_rolls):
    """The longest run of steps of a generated piece found in a reference piece.

    A step's content is the set of pitches that sound (the play channel). A
    run of consecutive steps is copied when the same number of consecutive
    steps of a reference piece holds the same sets, all shifted by one
    transposition (any number of semitones, the same for the whole run).

    Steps where nothing sounds match nothing: silence says nothing about where
    it came from, and letting it match would let a mostly silent piece "copy"
    any piece with rests. The cost is that a copied passage interrupted by a
    full rest is reported as two runs. Held and re-struck notes are not told
    apart, so a chord held for a bar matches any same-shaped chord held as
    long.

    How: each step is reduced to the shape of its chord above its lowest note,
    and each pair of consecutive sounding steps to a token (shape before,
    shape after, interval between their lowest notes); a copied run of L steps
    is then exactly a common substring of L - 1 tokens. Pairs around a silent
    step and piece boundaries get unique tokens that match nothing. One suffix
    array over all tokens (numpy prefix doubling, O(n log^2 n) for n steps in
    all) gives every generated suffix its longest common prefix with a
    reference suffix. A few hundred pieces of a few hundred steps take well
    under a second.

    Args:
        generated_rolls: list of rolls (`(steps, notes, 2)` or play-only
            `(steps, notes)`).
        reference_rolls: list of rolls with the same lowest pitch as the
            generated ones (their number of notes may differ).

    Returns:
        A CopyMatch.

    Raises:
        ValueError: for an array that is not a roll.
    """
    num_generated = len(generated_rolls)
    if not num_generated or not reference_rolls:
        return CopyMatch(0, None, None, None, None, None, (0,) * num_generated)
    plays = [play_and_onsets(r)[0] for r in list(generated_rolls) + list(reference_rolls)]
    width = max(play.shape[1] for play in plays)
    sounding, lowest, shapes, owner, step = [], [], [], [], []
    for index, play in enumerate(plays):
        padded = np.zeros((play.shape[0], width), bool)
        padded[:, : play.shape[1]] = play
        s, low, shape = _step_shapes(padded)
        sounding.append(s)
        lowest.append(low)
        shapes.append(shape)
        owner.append(np.full(play.shape[0], index, np.int64))
        step.append(np.arange(play.shape[0], dtype=np.int64))
    sounding = np.concatenate(sounding)
    lowest = np.concatenate(lowest)
    shape_id = _dense_ids(np.concatenate(shapes))
    owner = np.concatenate(owner)
    step = np.concatenate(step)
    is_generated = owner < num_generated

    # Token t stands for steps t-1 and t of the same piece.
    n = sounding.size
    valid = np.zeros(n, bool)
    valid[1:] = sounding[1:] & sounding[:-1] & (owner[1:] == owner[:-1])
    pairs = np.stack([np.roll(shape_id, 1), shape_id, lowest - np.roll(lowest, 1)], axis=1)
    tokens = np.empty(n + 1, np.int64)
    pair_ids = _dense_ids(pairs[valid])
    tokens[:n][valid] = pair_ids
    num_invalid = n + 1 - int(valid.sum())
    # Unique tokens, including one at the very end, so no match crosses them.
    tokens[np.flatnonzero(~np.append(valid, False))] = (
        int(pair_ids.max(initial=-1)) + 1 + np.arange(num_invalid))

    ranks = _suffix_ranks(tokens)
    suffixes = np.argsort(ranks[-1], kind="stable")
    lcp = _common_prefix_lengths(ranks, suffixes[:-1], suffixes[1:])
    position_generated = np.append(is_generated, False)[suffixes]
    position_reference = np.append(~is_generated, False)[suffixes]
    above = _nearest_reference_lcp(lcp, position_reference)
    below = _nearest_reference_lcp(lcp[::-1], position_reference[::-1])[::-1]
    best_tokens = np.maximum(above, below)

    # Runs of L >= 2 steps are L - 1 common tokens; a lone step matches when
    # its chord shape occurs anywhere in the reference set.
    reference_shapes = np.unique(shape_id[~is_generated & sounding])
    single = is_generated & sounding & np.isin(shape_id, reference_shapes)
    per_piece = np.zeros(num_generated, np.int64)
    np.maximum.at(per_piece, owner[single], 1)
    generated_suffixes = position_generated.nonzero()[0]
    runs = np.where(best_tokens[generated_suffixes] > 0, best_tokens[generated_suffixes] + 1, 0)
    np.maximum.at(per_piece, owner[suffixes[generated_suffixes]], runs)
    per_piece = tuple(int(x) for x in per_piece)

    longest = max(per_piece)
    if longest == 0:
        return CopyMatch(0, None, None, None, None, None, per_piece)
    if longest == 1:
        g = int(np.flatnonzero(single)[0])
        r = int(np.flatnonzero(~is_generated & sounding & (shape_id == shape_id[g]))[0])
    else:
        # The longest match lies between neighbours in suffix order.
        cross = position_generated[:-1] != position_generated[1:]
        cross &= (position_generated[:-1] | position_reference[:-1])
        cross &= (position_generated[1:] | position_reference[1:])
        k = int(np.argmax(np.where(cross, lcp, -1)))
        g, r = int(suffixes[k]), int(suffixes[k + 1])
        if not is_generated[g]:
            g, r = r, g
        g, r = g - 1, r - 1  # token t begins at step t-1
    return CopyMatch(
        length=longest,
        generated_index=int(owner[g]),
        reference_index=int(owner[r]) - num_generated,
        generated_start=int(step[g]),
        reference_start=int(step[r]),
        transposition=int(lowest[r] - lowest[g]),
        per_piece=per_piece,
    )
