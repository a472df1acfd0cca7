# -*- test-case-name: tests.integration.test_peers -*-
"""
Audio helpers for interop tests: make tone files for peers to send, then check what they received.

Peers such as baresip send audio from a WAV file and record what they receive
to another WAV file. These helpers make test tones and check the recordings:
which frequency dominates, how loud it is, and which in-band DTMF digits it
holds. They work on mono 16-bit PCM only, which is what baresip's C{aufile} and
C{sndfile} modules read and write.

The WAV reader does not trust the sizes in the header. baresip's C{sndfile}
module leaves the RIFF and C{data} sizes at 0 until the call ends, so while a
call is up the samples run to the end of the file.

This is test-only code; numpy is a test dependency (the C{test} extra in setup.py).
"""

import struct

import numpy

#: The DTMF grid (ITU-T Q.23): low (row) and high (column) frequencies in Hz.
DTMF_LOW = (697.0, 770.0, 852.0, 941.0)
DTMF_HIGH = (1209.0, 1336.0, 1477.0, 1633.0)
DTMF_KEYS = ("123A", "456B", "789C", "*0#D")


class WAVFormatError(ValueError):
    """
    The file is not a mono 16-bit PCM WAV file.
    """


def write_samples_wav(path, samples, rate=8000):
    """
    Write float samples in [-1, 1] to C{path} as a mono 16-bit PCM WAV file.
    """
    pcm = numpy.clip(numpy.asarray(samples, dtype=numpy.float64), -1.0, 1.0)
    data = (pcm * 32767.0).round().astype("<i2").tobytes()
    header = struct.pack(
        "<4sI4s4sIHHIIHH4sI",
        b"RIFF", 36 + len(data), b"WAVE",
        b"fmt ", 16, 1, 1, rate, rate * 2, 2, 16,
        b"data", len(data),
    )
    with open(path, "wb") as f:
        f.write(header)
        f.write(data)
    return path


def write_tone_wav(path, freq_hz, seconds, rate=8000, amplitude=0.5):
    """
    Write a sine tone of C{freq_hz} lasting C{seconds} to C{path} (mono,
    16-bit PCM).

    A C{freq_hz} of 0 writes silence. Returns C{path}.
    """
    t = numpy.arange(int(round(seconds * rate))) / rate
    return write_samples_wav(path, amplitude * numpy.sin(2 * numpy.pi * freq_hz * t), rate)


def write_dtmf_wav(path, digits, tone_seconds=0.1, gap_seconds=0.1, rate=8000, amplitude=0.25,
                   lead_seconds=0.2):
    """
    Write in-band DTMF C{digits} (each tone is the sum of two sines of
    C{amplitude}) with silence between the digits and around them. Returns
    C{path}.
    """
    parts = [numpy.zeros(int(lead_seconds * rate))]
    t = numpy.arange(int(round(tone_seconds * rate))) / rate
    for digit in digits:
        low, high = _dtmf_pair(digit)
        tone = numpy.sin(2 * numpy.pi * low * t) + numpy.sin(2 * numpy.pi * high * t)
        parts.append(amplitude * tone)
        parts.append(numpy.zeros(int(gap_seconds * rate)))
    parts.append(numpy.zeros(int(lead_seconds * rate)))
    return write_samples_wav(path, numpy.concatenate(parts), rate)


def read_wav(path):
    """
    Read a mono 16-bit PCM WAV file and return C{(samples, rate)}, with the
    samples as float64 in [-1, 1).

    A C{data} chunk whose size is 0 or larger than the file (a recording still
    being written) is read up to the end of the file.
    """
    with open(path, "rb") as f:
        blob = f.read()
    if len(blob) < 12 or blob[:4] != b"RIFF" or blob[8:12] != b"WAVE":
        raise WAVFormatError(f"{path}: not a RIFF/WAVE file")
    offset = 12
    rate = None
    while offset + 8 <= len(blob):
        chunk_id, size = struct.unpack_from("<4sI", blob, offset)
        body = offset + 8
        if chunk_id == b"fmt ":
            audio_format, channels, rate, _, _, bits = struct.unpack_from("<HHIIHH", blob, body)
            if audio_format != 1 or channels != 1 or bits != 16:
                raise WAVFormatError(
                    f"{path}: format {audio_format}, {channels} channel(s), {bits} bits;"
                    " expected mono 16-bit PCM"
                )
        elif chunk_id == b"data":
            if rate is None:
                raise WAVFormatError(f"{path}: data chunk before fmt chunk")
            end = len(blob) if size == 0 or body + size > len(blob) else body + size
            end -= (end - body) % 2
            samples = numpy.frombuffer(blob, dtype="<i2", count=(end - body) // 2, offset=body)
            return samples.astype(numpy.float64) / 32768.0, rate
        offset = body + size + (size & 1)
    raise WAVFormatError(f"{path}: no data chunk")


def wav_duration(path):
    """
    Return the length of the audio in C{path} in seconds.
    """
    samples, rate = read_wav(path)
    return len(samples) / rate


def _window(path, start, seconds):
    samples, rate = read_wav(path)
    first = int(start * rate)
    last = len(samples) if seconds is None else first + int(seconds * rate)
    chunk = samples[first:last]
    if len(chunk) == 0:
        raise ValueError(
            f"{path}: no audio from {start}s (the file holds {len(samples) / rate:.2f}s)"
        )
    return chunk, rate


def rms(path, start=0.0, seconds=None):
    """
    Return the root-mean-square level (full scale = 1.0) of C{path} from
    C{start} for C{seconds} (to the end when C{None}).

    A 0.5-amplitude sine reads about 0.354, also after a G.711 round trip.
    """
    chunk, _ = _window(path, start, seconds)
    return float(numpy.sqrt(numpy.mean(chunk * chunk)))


def dominant_frequency(path, start=0.5, seconds=None):
    """
    Return the frequency in Hz with the most energy in C{path} from C{start}
    for C{seconds} (to the end when C{None}).

    The default skips the first half second, where jitter buffers and codec
    start-up leave silence. The FFT uses a Hann window, and the peak is
    refined by parabolic interpolation over the neighbouring bins, so a one-second
    window is accurate to well under 1 Hz for a clean tone.
    """
    chunk, rate = _window(path, start, seconds)
    chunk = chunk - chunk.mean()
    spectrum = numpy.abs(numpy.fft.rfft(chunk * numpy.hanning(len(chunk))))
    peak = int(numpy.argmax(spectrum[1:])) + 1
    shift = 0.0
    if 1 <= peak < len(spectrum) - 1:
        left, centre, right = numpy.log(spectrum[peak - 1:peak + 2] + 1e-12)
        denominator = left - 2 * centre + right
        if denominator != 0:
            shift = 0.5 * (left - right) / denominator
    return float((peak + shift) * rate / len(chunk))


def goertzel_power(block, freq_hz, rate):
    """
    Return the power of C{freq_hz} in C{block} using the Goertzel recurrence.
    """
    coefficient = 2.0 * numpy.cos(2.0 * numpy.pi * freq_hz / rate)
    s_prev = s_prev2 = 0.0
    for x in block:
        s = x + coefficient * s_prev - s_prev2
        s_prev2, s_prev = s_prev, s
    return s_prev2 * s_prev2 + s_prev * s_prev - coefficient * s_prev * s_prev2


def detect_dtmf_digits(path, block_ms=20, min_blocks=2, min_level=0.01):
    """
    Return the in-band DTMF digits heard in C{path}, in order, as a string.

    The audio is cut into C{block_ms} blocks (160 samples at 8 kHz). A block
    holds a digit when the strongest row and column tones together carry most
    of the block's energy, and each is clearly stronger than the others in its
    group. A digit counts once it lasts C{min_blocks} blocks in a row, and
    again only after a block without it. Blocks quieter than C{min_level} RMS
    are silence.

    RFC 4733 digits arrive as events from peers (baresip's CALL_DTMF_START),
    so this is the fallback for in-band DTMF only.
    """
    samples, rate = read_wav(path)
    size = max(1, int(rate * block_ms / 1000))
    digits = []
    current, run = None, 0
    for first in range(0, len(samples) - size + 1, size):
        block = samples[first:first + size]
        digit = _block_digit(block, rate, min_level)
        if digit is not None and digit == current:
            run += 1
        else:
            current, run = digit, 1 if digit is not None else 0
        if current is not None and run == min_blocks:
            digits.append(current)
    return "".join(digits)


def _block_digit(block, rate, min_level):
    energy = float(numpy.dot(block, block))
    if energy / len(block) < min_level * min_level:
        return None
    low = [goertzel_power(block, f, rate) for f in DTMF_LOW]
    high = [goertzel_power(block, f, rate) for f in DTMF_HIGH]
    row, column = int(numpy.argmax(low)), int(numpy.argmax(high))
    # A pure tone of amplitude a over N samples gives Goertzel power ~ (a*N/2)**2
    # while the block energy is a*a*N/2, so tone power / (energy * N / 2) ~ 1.
    scale = energy * len(block) / 2.0
    if (low[row] + high[column]) / scale < 0.5:
        return None
    if any(p * 4 > low[row] for i, p in enumerate(low) if i != row):
        return None
    if any(p * 4 > high[column] for i, p in enumerate(high) if i != column):
        return None
    # Twist: the two tones are within 8 dB of each other (power ratio ~6.3).
    if max(low[row], high[column]) > 6.3 * min(low[row], high[column]):
        return None
    return DTMF_KEYS[row][column]


def _dtmf_pair(digit):
    for row, keys in enumerate(DTMF_KEYS):
        column = keys.find(digit.upper())
        if column >= 0:
            return DTMF_LOW[row], DTMF_HIGH[column]
    raise ValueError(f"not a DTMF digit: {digit!r}")
