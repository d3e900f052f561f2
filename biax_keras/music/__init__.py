"""Music: pieces as state rolls and back, primers, statistics, sound and pictures.

The lowest stage: it imports no other stage of the package, and nothing here
imports TensorFlow.

- `representation`: NoteSequence <-> roll, metrical quantization, bar positions
- `primer`: the opening of a MIDI file, to continue
- `midi_files`: sets of MIDI files read as rolls, bad ones skipped with a reason
- `statistics`, `copies`, `plots`: music statistics of sets, the copy check
- `audio`, `pictures`: a piece as sound and as a labelled piano roll
"""
