"""A built-in synthetic speaker-verification corpus in the VoxCeleb layout.

Voices come from a source-filter model. Each speaker is a stable voice drawn from the seed (mean
pitch and range, vocal-tract length, speaker-specific formant and vowel offsets, spectral tilt,
breathiness, jitter/shimmer, open quotient, speaking rate). Each utterance is different content:
syllables built from a shared inventory of vowels and consonants, with a pitch contour
(declination + accents) and pauses. Each recording session adds a channel: the speaker's state of
the day, a small room, a mild microphone EQ and background noise at a random SNR, so the same
speaker sounds different across sessions, which is what makes verification non-trivial.

Synthesis is frame-based for speed: the glottal source (Rosenberg pulses + aspiration) and a noise
source are built sample by sample with numpy, then shaped in the STFT domain by per-frame vocal
tract envelopes (a cascade of formant resonances, interpolated between segment targets so that
formants glide), and overlap-added back.

Every file depends only on (seed, speaker, session, utterance number), never on generation order.
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import signal
from tqdm import tqdm

from svbench.corpus.audio import write_wav
from svbench.corpus.config import SyntheticConfig
from svbench.corpus.manifest import Trial, Utterance, manifest_text, trials_text
from svbench.errors import UserError
from svbench.fileio import write_texts_atomic

TEST_SPEAKER_BASE = 10000  # test speakers are id10001…, like VoxCeleb1's id10xxx, so they never clash with training ids
# Difficulty. Speaker differences (TIMBRE_*) against session nuisance (the rest), calibrated so that a
# mean+std log-mel baseline with cosine scoring lands near 30 % EER on cross-session trials.
TIMBRE_BANDS = 5  # speaker-specific spectral peaks/dips
TIMBRE_DB = 10.0  # their gain spread (standard deviation, dB)
EQ_DB = 3.0  # session microphone EQ gain spread (standard deviation, dB)
STATE = 0.7  # scale of the speaker's day-to-day pitch and tilt changes
SNR_LO, SNR_HI = 15.0, 30.0  # session background noise, dB
RT60_HI = 0.45  # longest room reverberation time, s
DRR_LO = 0.0  # lowest direct-to-reverberant ratio, dB (up to DRR_LO + 15)
NOISE_SLOPE_LO, NOISE_SLOPE_HI = -4.5, -1.5  # background noise colour, dB/octave
NOISE_BUMPS_DB = 3.0
HIGH_CUT_LO = 5000.0  # lowest microphone/codec band limit, Hz
FRIC_GAIN = 0.35  # fricative and burst level relative to voicing
TILT_LO = -4.0  # steepest extra speaker tilt, dB/octave
LEVEL_SPREAD = 6.0  # recording level spread around -26 dBFS, dB

# Shared vowel inventory: F1-F4 (Hz) of an adult male voice (Peterson & Barney, F4 approximate).
VOWELS = np.array(
    [
        [270, 2290, 3010, 3500],  # i
        [390, 1990, 2550, 3600],  # ɪ
        [530, 1840, 2480, 3500],  # ɛ
        [660, 1720, 2410, 3500],  # æ
        [730, 1090, 2440, 3400],  # ɑ
        [570, 840, 2410, 3300],  # ɔ
        [440, 1020, 2240, 3300],  # ʊ
        [300, 870, 2240, 3300],  # u
        [640, 1190, 2390, 3400],  # ʌ
        [490, 1350, 1690, 3300],  # ɝ
    ],
    dtype=np.float64,
)
BANDWIDTHS = np.array([70.0, 100.0, 160.0, 250.0, 300.0])  # B1-B5, scaled per speaker

# Voiced consonants with their own formant targets (nasals, approximants): F1-F4 and voicing level.
SONORANTS = {
    "m": ([280, 1000, 2200, 3300], 0.35),
    "n": ([280, 1450, 2500, 3300], 0.35),
    "w": ([320, 750, 2200, 3300], 0.6),
    "j": ([290, 2150, 2950, 3500], 0.6),
    "l": ([360, 1250, 2700, 3400], 0.6),
    "r": ([380, 1150, 1550, 3200], 0.6),
}
# Fricatives: (centre Hz, bandwidth Hz, noise level, voicing level).
FRICATIVES = {
    "s": (5500.0, 2500.0, 0.9, 0.0),
    "sh": (3200.0, 1600.0, 0.9, 0.0),
    "f": (4500.0, 7000.0, 0.35, 0.0),
    "th": (5000.0, 6000.0, 0.25, 0.0),
    "z": (5500.0, 2500.0, 0.5, 0.35),
    "v": (4500.0, 7000.0, 0.25, 0.35),
}
# Plosives: (burst centre Hz, burst bandwidth Hz, voiced?).
PLOSIVES = {
    "p": (900.0, 2500.0, False),
    "t": (4000.0, 4000.0, False),
    "k": (2000.0, 2000.0, False),
    "b": (900.0, 2500.0, True),
    "d": (4000.0, 4000.0, True),
    "g": (2000.0, 2000.0, True),
}
CONSONANTS = [*SONORANTS, *FRICATIVES, *PLOSIVES, "h"]

_SESSION_ALPHABET = np.array(list("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"))


@dataclass(frozen=True)
class Voice:
    """The stable properties of one speaker."""

    f0: float  # mean pitch, Hz
    f0_range: float  # accent height, semitones
    formant_scale: float  # 1/vocal-tract-length factor applied to every formant
    formant_offsets: np.ndarray  # (4,) multiplicative, per formant
    vowel_offsets: np.ndarray  # (n_vowels, 4) multiplicative: the speaker's own vowel space
    f5: float  # fifth formant, Hz (speaker-specific, fixed)
    bw_scale: float
    tilt: float  # extra spectral tilt, dB per octave above 500 Hz
    breath: float  # aspiration noise relative to the pulse
    jitter: float  # period-to-period f0 perturbation (fraction)
    shimmer: float  # period-to-period amplitude perturbation (fraction)
    open_quotient: float
    rate: float  # speaking rate factor (>1 = faster)
    vowel_prefs: np.ndarray  # (n_vowels,) probabilities: speakers favour some sounds
    consonant_prefs: np.ndarray  # (n_consonants,) probabilities
    fric_scale: float  # shifts the speaker's fricative and burst spectra
    timbre: np.ndarray  # (k, 3): fixed spectral peaks/notches (centre Hz, gain dB, width octaves)


@dataclass(frozen=True)
class Session:
    """One recording: the speaker's state of the day and the channel."""

    f0_shift: float  # semitones
    tilt_shift: float  # dB/octave
    rate_factor: float
    channel_ir: np.ndarray  # room + microphone EQ + band limit, one impulse response
    noise_ir: np.ndarray  # colour of the background noise
    snr_db: float
    hum: tuple[float, float] | None  # (mains frequency, level relative to noise) or None


def draw_voice(rng: np.random.Generator) -> Voice:
    female = rng.random() < 0.5
    # Pitch 85-250 Hz overall; formant scale ~1.17 for female voices (shorter vocal tract).
    f0 = float(np.clip(np.exp(rng.normal(math.log(205.0 if female else 115.0), 0.12)), 85.0, 250.0))
    scale = float(rng.normal(1.16 if female else 1.0, 0.06))
    n_vowels = len(VOWELS)
    # Timbre the formants do not capture (nasal and sinus coupling, piriform fossae, wall losses):
    # a smooth speaker-specific curve of a few peaks and dips, fixed for the speaker.
    timbre = np.column_stack(
        [
            np.exp(rng.uniform(math.log(150.0), math.log(6000.0), TIMBRE_BANDS)) * scale,
            rng.normal(0.0, TIMBRE_DB, TIMBRE_BANDS),
            rng.uniform(0.3, 0.8, TIMBRE_BANDS),
        ]
    )
    return Voice(
        f0=f0,
        f0_range=float(rng.uniform(1.5, 5.0)),
        formant_scale=scale,
        formant_offsets=np.exp(rng.normal(0.0, [0.05, 0.05, 0.06, 0.07])),
        vowel_offsets=np.exp(rng.normal(0.0, 0.04, size=(n_vowels, 4))),
        f5=float(4400.0 * scale * np.exp(rng.normal(0.0, 0.05))),
        bw_scale=float(np.exp(rng.normal(0.0, 0.2))),
        tilt=float(rng.uniform(TILT_LO, 2.0)),
        breath=float(np.exp(rng.uniform(math.log(0.02), math.log(0.4)))),
        jitter=float(rng.uniform(0.003, 0.02)),
        shimmer=float(rng.uniform(0.02, 0.08)),
        open_quotient=float(rng.uniform(0.45, 0.8)),
        rate=float(np.exp(rng.normal(0.0, 0.12))),
        vowel_prefs=rng.dirichlet(np.full(n_vowels, 3.0)),
        consonant_prefs=rng.dirichlet(np.full(len(CONSONANTS), 3.0)),
        fric_scale=float(scale * np.exp(rng.normal(0.0, 0.1))),
        timbre=timbre,
    )


def _peaking(f0: float, gain_db: float, q: float, fs: int) -> np.ndarray:
    """RBJ cookbook peaking EQ as one second-order section."""
    a = 10 ** (gain_db / 40)
    w0 = 2 * math.pi * f0 / fs
    alpha = math.sin(w0) / (2 * q)
    b = [1 + alpha * a, -2 * math.cos(w0), 1 - alpha * a]
    den = [1 + alpha / a, -2 * math.cos(w0), 1 - alpha / a]
    return np.array([*(np.array(b) / den[0]), 1.0, den[1] / den[0], den[2] / den[0]])


def _shelf(f0: float, gain_db: float, fs: int, high: bool) -> np.ndarray:
    """RBJ cookbook shelving filter (slope 1) as one second-order section."""
    a = 10 ** (gain_db / 40)
    w0 = 2 * math.pi * f0 / fs
    cw, alpha = math.cos(w0), math.sin(w0) / math.sqrt(2)
    sa = 2 * math.sqrt(a) * alpha
    s = -1 if high else 1  # the high shelf is the low shelf with the sign of cos(w0) flipped
    b = [
        a * ((a + 1) - s * (a - 1) * cw + sa),
        s * 2 * a * ((a - 1) - s * (a + 1) * cw),
        a * ((a + 1) - s * (a - 1) * cw - sa),
    ]
    den = [(a + 1) + s * (a - 1) * cw + sa, -s * 2 * ((a - 1) + s * (a + 1) * cw), (a + 1) + s * (a - 1) * cw - sa]
    return np.array([*(np.array(b) / den[0]), 1.0, den[1] / den[0], den[2] / den[0]])


def draw_session(rng: np.random.Generator, fs: int) -> Session:
    # Microphone / codec: a couple of peaking filters, two shelves, a band limit. Centres stay below
    # Nyquist at low sample rates (a biquad centred above it is unstable).
    top = 0.4 * fs
    sos = [
        _peaking(
            min(float(np.exp(rng.uniform(math.log(200), math.log(5000)))), top),
            float(rng.normal(0, EQ_DB)),
            float(rng.uniform(0.7, 2.5)),
            fs,
        )
        for _ in range(2)
    ]
    sos.append(_shelf(float(rng.uniform(150, 500)), float(rng.normal(0, 0.8 * EQ_DB)), fs, high=False))
    sos.append(_shelf(min(float(rng.uniform(2000, 5000)), top), float(rng.normal(0, 0.8 * EQ_DB)), fs, high=True))
    sos.extend(signal.butter(2, float(rng.uniform(50, 200)), "highpass", fs=fs, output="sos"))
    high_cut = min(float(rng.uniform(HIGH_CUT_LO, 8000)), 0.47 * fs)
    sos.extend(signal.butter(4, high_cut, "lowpass", fs=fs, output="sos"))

    # A small room: direct path + exponentially decaying noise tail.
    rt60 = float(rng.uniform(0.05, RT60_HI))
    n_tail = int(rt60 * fs)
    t = np.arange(n_tail) / fs
    tail = rng.standard_normal(n_tail) * np.exp(-6.9 * t / rt60)  # -60 dB at rt60
    tail[: int(0.002 * fs)] = 0.0  # first reflections arrive a couple of ms after the direct sound
    drr_db = float(rng.uniform(DRR_LO, DRR_LO + 15.0))  # direct-to-reverberant ratio
    tail *= 10 ** (-drr_db / 20) / math.sqrt(np.sum(tail**2))
    room = tail
    room[0] = 1.0
    impulse_len = n_tail + int(0.02 * fs)  # room + some room for the EQ's own ringing
    channel_ir = signal.sosfilt(np.array(sos), np.pad(room, (0, impulse_len - n_tail)))

    # Background noise colour: a random smooth spectral shape.
    freqs = np.linspace(0, fs / 2, 9)
    slope = rng.uniform(NOISE_SLOPE_LO, NOISE_SLOPE_HI)  # dB per octave: pink-ish, like rooms and crowds
    gains_db = slope * np.log2(np.maximum(freqs, 125.0) / 125.0) + rng.normal(0, NOISE_BUMPS_DB, size=freqs.size)
    noise_ir = signal.firwin2(129, freqs / (fs / 2), 10 ** (gains_db / 20))

    hum = (float(rng.choice([50.0, 60.0])), float(rng.uniform(0.2, 1.0))) if rng.random() < 0.25 else None
    return Session(
        f0_shift=float(rng.normal(0.0, STATE * 1.0)),
        tilt_shift=float(rng.normal(0.0, STATE * 1.5)),
        rate_factor=float(np.exp(rng.normal(0.0, 0.05))),
        channel_ir=channel_ir,
        noise_ir=noise_ir,
        snr_db=float(rng.uniform(SNR_LO, SNR_HI)),
        hum=hum,
    )


class _Plan:
    """Per-segment parameters of one utterance, built syllable by syllable."""

    def __init__(self) -> None:
        self.ends: list[float] = []  # segment end times, s
        self.av: list[float] = []  # voicing
        self.af: list[float] = []  # frication noise (own band)
        self.ah: list[float] = []  # aspiration noise through the vocal tract
        self.fc: list[float] = []  # frication centre, Hz
        self.fbw: list[float] = []  # frication bandwidth, Hz
        self.key_t: list[float] = []  # formant keypoints: time, F1-F4
        self.key_f: list[np.ndarray] = []
        self.accents: list[tuple[float, float, float]] = []  # (centre, width, height in semitones)
        self.phrases: list[tuple[float, float]] = []

    @property
    def t(self) -> float:
        return self.ends[-1] if self.ends else 0.0

    def add(
        self,
        dur: float,
        av: float = 0.0,
        af: float = 0.0,
        ah: float = 0.0,
        fc: float = 4000.0,
        fbw: float = 4000.0,
        formants: np.ndarray | None = None,
        keys: tuple[float, ...] = (0.5,),
    ) -> None:
        start = self.t
        self.ends.append(start + dur)
        self.av.append(av)
        self.af.append(af)
        self.ah.append(ah)
        self.fc.append(fc)
        self.fbw.append(fbw)
        if formants is not None:
            for k in keys:
                self.key_t.append(start + k * dur)
                self.key_f.append(formants)


def _consonant(plan: _Plan, name: str, voice: Voice, rng: np.random.Generator, slow: float) -> None:
    """Append one consonant; `slow` scales durations (1/rate)."""
    scale = voice.formant_scale * voice.formant_offsets
    if name in SONORANTS:
        formants, av = SONORANTS[name]
        plan.add(rng.uniform(0.045, 0.085) * slow, av=av, formants=np.array(formants) * scale)
    elif name in FRICATIVES:
        fc, bw, af, av = FRICATIVES[name]
        plan.add(rng.uniform(0.07, 0.13) * slow, av=av, af=af, fc=fc * voice.fric_scale, fbw=bw)
    elif name in PLOSIVES:
        fc, bw, voiced = PLOSIVES[name]
        plan.add(rng.uniform(0.04, 0.08) * slow, av=0.08 if voiced else 0.0)  # closure (voice bar if voiced)
        plan.add(rng.uniform(0.008, 0.02), af=1.2, fc=fc * voice.fric_scale, fbw=bw)  # burst
        if not voiced:
            plan.add(rng.uniform(0.02, 0.05) * slow, ah=0.5)  # aspiration before voicing starts
    else:  # "h"
        plan.add(rng.uniform(0.05, 0.09) * slow, ah=0.6)


def _plan_utterance(voice: Voice, session: Session, seconds: float, rng: np.random.Generator) -> _Plan:
    slow = 1.0 / (voice.rate * session.rate_factor)
    plan = _Plan()
    plan.add(rng.uniform(0.02, 0.15))  # leading silence
    end_speech = seconds - rng.uniform(0.02, 0.15)
    vowel_scale = voice.formant_scale * voice.formant_offsets * voice.vowel_offsets
    cons_p = voice.consonant_prefs
    while True:
        phrase_start = plan.t
        for _ in range(rng.integers(4, 12)):
            if plan.t + 0.3 * slow > end_speech:  # no room for another syllable
                break
            for _ in range(rng.choice(3, p=[0.25, 0.6, 0.15])):  # onset: 0-2 consonants
                _consonant(plan, CONSONANTS[rng.choice(len(CONSONANTS), p=cons_p)], voice, rng, slow)
            v = rng.choice(len(VOWELS), p=voice.vowel_prefs)
            formants = VOWELS[v] * vowel_scale[v] * np.exp(rng.normal(0, 0.03, size=4))  # token variation
            stressed = rng.random() < 0.35
            dur = rng.uniform(0.07, 0.16) * slow * (1.4 if stressed else 1.0)
            start = plan.t
            plan.add(dur, av=1.0, ah=0.0, formants=formants, keys=(0.3, 0.7))
            if stressed:
                height = voice.f0_range * rng.uniform(0.4, 1.0) * rng.choice([1.0, -0.5], p=[0.85, 0.15])
                plan.accents.append((start + dur / 2, dur * 0.6, height))
            if rng.random() < 0.4:  # coda
                _consonant(plan, CONSONANTS[rng.choice(len(CONSONANTS), p=cons_p)], voice, rng, slow)
        if plan.t > phrase_start:
            plan.phrases.append((phrase_start, plan.t))
        if plan.t + 0.4 * slow > end_speech:
            break
        plan.add(rng.uniform(0.08, 0.3) * slow)  # pause between phrases
    plan.add(max(seconds - plan.t, 0.0) + 0.1)  # trailing silence up to the end
    if not plan.key_t:  # an utterance too short for a syllable still needs formant values
        plan.key_t.append(0.0)
        plan.key_f.append(VOWELS[4] * vowel_scale[4])
    return plan


def _resonances(freqs: np.ndarray, centres: np.ndarray, bandwidths: np.ndarray) -> np.ndarray:
    """Magnitude response of a cascade of two-pole resonators (unity gain at 0 Hz).

    freqs: (bins,), centres/bandwidths: (frames, k) → (frames, bins).
    """
    f = freqs[None, :, None]
    c = centres[:, None, :]
    b2 = (bandwidths[:, None, :] / 2) ** 2
    h = (c**2 + b2) / np.sqrt(((f - c) ** 2 + b2) * ((f + c) ** 2 + b2))
    return np.prod(h, axis=2)


def _smooth(values: np.ndarray, width: int) -> np.ndarray:
    """Moving average over ``width`` frames (the on/off ramps of a segment's levels)."""
    return np.convolve(values, np.ones(width) / width, mode="same") if width > 1 else values


def _pitch_per_sample(plan: _Plan, voice: Voice, session: Session, n: int, hop: int, fs: int,
                      rng: np.random.Generator) -> np.ndarray:
    """f0 (Hz) of every sample: declination per phrase, accents and a slow wander, on a frame grid."""
    t_frames = np.arange(n // hop + 2) * hop / fs
    semitones = np.zeros_like(t_frames)
    for start, end in plan.phrases:  # declination: start a little high, fall through the phrase
        inside = (t_frames >= start) & (t_frames < end)
        semitones[inside] += rng.uniform(1.0, 2.5) - rng.uniform(2.0, 4.0) * (t_frames[inside] - start) / max(
            end - start, 1e-3
        )
    for centre, width, height in plan.accents:
        semitones += height * np.exp(-0.5 * ((t_frames - centre) / width) ** 2)
    semitones += np.cumsum(rng.normal(0, 0.08, t_frames.size))  # slow wander
    f0_frames = voice.f0 * 2 ** ((semitones + session.f0_shift) / 12)
    return np.clip(np.interp(np.arange(n) / fs, t_frames, f0_frames), 60.0, 400.0)


def _glottal_sources(voice: Voice, f0: np.ndarray, fs: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(voiced, noise) sources: Rosenberg glottal flow derivative with jitter/shimmer plus aspiration, and a
    white noise source at the pulses' level."""
    n = f0.size
    period = np.floor(np.cumsum(f0) / fs).astype(np.int64)
    n_periods = int(period[-1]) + 2
    f0 = f0 * (1 + voice.jitter * rng.standard_normal(n_periods)[period])
    phase = np.cumsum(f0) / fs
    period = np.floor(phase).astype(np.int64)
    frac = phase - period
    oq = voice.open_quotient
    tp, tn = 0.65 * oq, 0.35 * oq  # opening and closing phases of the glottal pulse
    opening, closing = frac < tp, (frac >= tp) & (frac < tp + tn)
    flow = np.where(opening, 0.5 * (1 - np.cos(np.pi * frac / tp)), 0.0)
    flow = np.where(closing, np.cos(0.5 * np.pi * (frac - tp) / tn), flow)
    dflow = np.where(opening, 0.5 * np.pi / tp * np.sin(np.pi * frac / tp), 0.0)
    dflow = np.where(closing, -0.5 * np.pi / tn * np.sin(0.5 * np.pi * (frac - tp) / tn), dflow)
    pulses = dflow * (1 + voice.shimmer * rng.standard_normal(int(period[-1]) + 1)[period])
    pulse_rms = math.sqrt(float(np.mean(pulses**2))) + 1e-9
    pulses = pulses + voice.breath * pulse_rms * rng.standard_normal(n) * (0.3 + flow)
    noise = rng.standard_normal(n) * pulse_rms
    return pulses, noise


def _voice_colour(voice: Voice, session: Session, freqs: np.ndarray) -> np.ndarray:
    """Linear gain per frequency bin: the speaker's and session's spectral tilt and the speaker's timbre."""
    octaves = np.log2(np.maximum(freqs, 50.0) / 500.0)
    colour_db = (voice.tilt + session.tilt_shift) * np.maximum(octaves, 0.0)
    for centre, gain_db, width in voice.timbre:
        colour_db += gain_db * np.exp(-0.5 * (np.log2(np.maximum(freqs, 50.0) / centre) / width) ** 2)
    return 10 ** (colour_db / 20)


def _vocal_tract(plan: _Plan, voice: Voice, freqs: np.ndarray, t_frames: np.ndarray, fs: int) -> np.ndarray:
    """(frames, bins) magnitude of the vocal tract: F1-F4 glide between keypoints; F5 is fixed per speaker."""
    key_t, key_f = np.array(plan.key_t), np.array(plan.key_f)
    centres = np.empty((t_frames.size, 5))
    for k in range(4):
        centres[:, k] = np.interp(t_frames, key_t, key_f[:, k])
    centres[:, 4] = voice.f5
    centres = np.minimum(centres, 0.45 * fs)
    bws = np.broadcast_to(BANDWIDTHS * voice.bw_scale, centres.shape) * (1 + centres / 5000)
    return _resonances(freqs, centres, bws)


def _shape_sources(plan: _Plan, voice: Voice, session: Session, sources: np.ndarray, fs: int,
                   nperseg: int) -> np.ndarray:
    """Speech: the (voiced, noise) sources shaped frame by frame in the STFT domain, overlap-added back."""
    hop = nperseg // 4
    stft = dict(fs=fs, window="hann", nperseg=nperseg, noverlap=nperseg - hop)
    _, _, spec = signal.stft(sources, boundary="zeros", padded=True, **stft)
    freqs = np.fft.rfftfreq(nperseg, 1 / fs)
    t_frames = np.arange(spec.shape[2]) * hop / fs
    seg = np.minimum(np.searchsorted(np.array(plan.ends), t_frames, side="right"), len(plan.ends) - 1)
    ramp = max(int(round(0.02 * fs / hop)), 1)  # ~20 ms on/off ramps

    def track(values: list[float]) -> np.ndarray:
        return _smooth(np.asarray(values)[seg], ramp)

    tract = _vocal_tract(plan, voice, freqs, t_frames, fs)
    fc, fbw = track(plan.fc), track(plan.fbw)
    frication = 1 / (1 + ((freqs[None, :] - fc[:, None]) / (fbw[:, None] / 2)) ** 2)
    av, af, ah = track(plan.av), track(plan.af), track(plan.ah)
    gain_v = (av[:, None] * tract * _voice_colour(voice, session, freqs)[None, :]).T
    gain_n = (ah[:, None] * tract * 0.3 + af[:, None] * frication * FRIC_GAIN).T
    _, speech = signal.istft(spec[0] * gain_v + spec[1] * gain_n, boundary=True, **stft)
    return speech


def _record(speech: np.ndarray, session: Session, fs: int, rng: np.random.Generator) -> np.ndarray:
    """The session's channel: room + microphone in one impulse response, then background noise (and mains
    hum) at the session SNR."""
    n = speech.size
    speech = signal.fftconvolve(speech, session.channel_ir)[:n]
    speech_power = float(np.mean(speech**2)) + 1e-12
    background = signal.fftconvolve(rng.standard_normal(n + session.noise_ir.size), session.noise_ir,
                                    mode="valid")[:n]
    if session.hum is not None:
        mains, level = session.hum
        background_rms = math.sqrt(float(np.mean(background**2)))
        t_samples = np.arange(n) / fs
        background = background + level * background_rms * sum(
            np.sin(2 * np.pi * h * mains * t_samples + rng.uniform(0, 2 * np.pi)) / h for h in (1, 2, 3)
        )
    snr_db = session.snr_db + rng.normal(0.0, 2.0)
    background *= math.sqrt(speech_power / (float(np.mean(background**2)) + 1e-12) * 10 ** (-snr_db / 10))
    return speech + background


def _set_level(audio: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Recording level: RMS around -26 dBFS, never clipping."""
    audio *= 10 ** ((-26.0 + LEVEL_SPREAD * (rng.random() - 0.5)) / 20) / math.sqrt(float(np.mean(audio**2)) + 1e-12)
    peak = float(np.max(np.abs(audio)))
    if peak > 0.99:
        audio *= 0.99 / peak
    return audio


def synthesize(voice: Voice, session: Session, seconds: float, rng: np.random.Generator, fs: int = 16000) -> np.ndarray:
    """One utterance of `seconds` seconds (float64, peak below 1)."""
    n = int(round(seconds * fs))
    plan = _plan_utterance(voice, session, seconds, rng)
    nperseg = 1 << int(round(math.log2(0.032 * fs)))  # 32 ms window, 8 ms hop
    f0 = _pitch_per_sample(plan, voice, session, n, nperseg // 4, fs, rng)
    pulses, noise = _glottal_sources(voice, f0, fs, rng)
    speech = _shape_sources(plan, voice, session, np.stack([pulses, noise]), fs, nperseg)[:n]
    return _set_level(_record(speech, session, fs, rng), rng)


def _session_id(rng: np.random.Generator) -> str:
    return "".join(rng.choice(_SESSION_ALPHABET, size=11))


def _make_trials(
    utts: list[Utterance], sessions: dict[str, str], n_trials: int, rng: np.random.Generator
) -> list[Trial]:
    """Half target, half non-target trials without repeated pairs.

    Target pairs come from different sessions of the same speaker where there are enough of them.
    """
    n_target = n_trials // 2
    n_nontarget = n_trials - n_target
    by_speaker: dict[str, list[str]] = {}
    for u in utts:
        by_speaker.setdefault(u.speaker, []).append(u.utt)

    cross, same = [], []
    for ids in by_speaker.values():
        for i, first in enumerate(ids):
            for second in ids[i + 1 :]:
                (cross if sessions[first] != sessions[second] else same).append((first, second))
    if n_target > len(cross) + len(same):
        raise UserError(f"{n_trials} trials need {n_target} target pairs, the test set has {len(cross) + len(same)}")
    targets = [cross[i] for i in rng.choice(len(cross), size=min(n_target, len(cross)), replace=False)]
    if n_target > len(cross):
        targets += [same[i] for i in rng.choice(len(same), size=n_target - len(cross), replace=False)]

    all_ids = [u.utt for u in utts]
    speaker_of = {u.utt: u.speaker for u in utts}
    n_possible = (len(all_ids) * (len(all_ids) - 1)) // 2 - len(cross) - len(same)
    if n_nontarget > n_possible:
        raise UserError(f"{n_trials} trials need {n_nontarget} non-target pairs, the test set has {n_possible}")
    nontargets: set[tuple[str, str]] = set()
    if n_nontarget > n_possible // 2:  # dense: enumerate all, then choose
        pairs = [(first, second) for i, first in enumerate(all_ids) for second in all_ids[i + 1 :]
                 if speaker_of[first] != speaker_of[second]]
        nontargets = {pairs[i] for i in rng.choice(len(pairs), size=n_nontarget, replace=False)}
    else:  # sparse: draw random pairs until there are enough distinct ones
        while len(nontargets) < n_nontarget:
            first, second = (all_ids[i] for i in rng.choice(len(all_ids), size=2, replace=False))
            if speaker_of[first] != speaker_of[second]:
                nontargets.add((min(first, second), max(first, second)))

    trials = []
    for label, pairs in ((1, targets), (0, sorted(nontargets))):
        for first, second in pairs:
            enroll, test = (first, second) if rng.random() < 0.5 else (second, first)
            trials.append(Trial(label, enroll, test))
    trials.sort(key=lambda t: (t.enroll, t.test))
    return trials


def _check_request(n_train_speakers: int, n_test_speakers: int, utts_per_speaker: int, sessions_per_speaker: int,
                   min_seconds: float, max_seconds: float, n_trials: int) -> None:
    """UserError for a corpus that cannot be made."""
    if not 0 <= n_train_speakers < TEST_SPEAKER_BASE or not 2 <= n_test_speakers < TEST_SPEAKER_BASE:
        raise UserError("need 0-9999 training speakers and 2-9999 test speakers")
    if not 1 <= sessions_per_speaker <= utts_per_speaker:
        raise UserError("need 1 <= sessions_per_speaker <= utts_per_speaker")
    if not 0 < min_seconds <= max_seconds:
        raise UserError("need 0 < min_seconds <= max_seconds")
    if n_trials < 2:
        raise UserError("need at least 2 trials (one target, one non-target)")


@dataclass(frozen=True)
class _SpeakerRequest:
    """What to record of every speaker: the corpus seed, utterances, sessions, lengths and sample rate."""

    seed: int
    utts_per_speaker: int
    sessions_per_speaker: int
    min_seconds: float
    max_seconds: float
    sample_rate: int


def _record_speaker(out_dir: Path, number: int, request: _SpeakerRequest) -> list[tuple[Utterance, str]]:
    """Write the wav files of speaker ``number``; returns each utterance with its session id.

    Independent streams per speaker/session/utterance: files do not depend on generation order.
    """
    seed, fs = request.seed, request.sample_rate
    speaker = f"id{number:05d}"
    voice = draw_voice(np.random.default_rng([seed, 0, number]))
    session_ids: list[str] = []
    recorded = []
    for s in range(request.sessions_per_speaker):
        srng = np.random.default_rng([seed, 1, number, s])
        session = draw_session(srng, fs)
        session_id = _session_id(srng)
        while session_id in session_ids:
            session_id = _session_id(srng)
        session_ids.append(session_id)
        (out_dir / "wav" / speaker / session_id).mkdir(parents=True, exist_ok=True)
        for k, _ in enumerate(range(s, request.utts_per_speaker, request.sessions_per_speaker)):
            urng = np.random.default_rng([seed, 2, number, s, k])
            seconds = float(urng.uniform(request.min_seconds, request.max_seconds))
            audio = synthesize(voice, session, seconds, urng, fs)
            utt = f"{speaker}/{session_id}/{k + 1:05d}.wav"
            write_wav(out_dir / "wav" / utt, audio, fs)
            recorded.append((Utterance(utt, speaker, Path("wav") / utt, audio.size / fs), session_id))
    return recorded


def _write_lists(out_dir: Path, manifests: dict[str, list[Utterance]], trials: list[Trial]) -> None:
    """The manifests and the trial list, all at once: a failure leaves an earlier run's files as they were."""
    texts = {out_dir / f"{split}.tsv": manifest_text(out_dir / f"{split}.tsv", utts)
             for split, utts in manifests.items()}
    texts[out_dir / "trials" / "synthetic.txt"] = trials_text(out_dir / "trials" / "synthetic.txt", trials)
    write_texts_atomic(texts)


def generate(
    out_dir: Path,
    n_train_speakers: int,
    n_test_speakers: int,
    utts_per_speaker: int,
    sessions_per_speaker: int,
    min_seconds: float,
    max_seconds: float,
    n_trials: int,
    seed: int,
    sample_rate: int = 16000,
    progress: bool = True,
) -> dict:
    """Write a synthetic corpus under `out_dir` and return a summary.

    Layout: `wav/idNNNNN/<session>/NNNNN.wav`, `train.tsv`, `test.tsv` (paths relative to
    `out_dir`) and `trials/synthetic.txt` over the test speakers. The same arguments give
    byte-identical files. Manifests and trials are written last, so a run that stops early leaves
    no manifest that points at missing audio.
    """
    _check_request(n_train_speakers, n_test_speakers, utts_per_speaker, sessions_per_speaker, min_seconds,
                   max_seconds, n_trials)
    out_dir = Path(out_dir)
    (out_dir / "trials").mkdir(parents=True, exist_ok=True)
    splits = {
        "train": [i + 1 for i in range(n_train_speakers)],
        "test": [TEST_SPEAKER_BASE + i + 1 for i in range(n_test_speakers)],
    }
    request = _SpeakerRequest(seed, utts_per_speaker, sessions_per_speaker, min_seconds, max_seconds, sample_rate)
    total = (n_train_speakers + n_test_speakers) * utts_per_speaker
    # tqdm starts a monitor thread even when disabled, so only make a bar when it is shown.
    bar = tqdm(total=total, unit="utt", desc="synthetic corpus", file=sys.stderr) if progress else None
    manifests: dict[str, list[Utterance]] = {split: [] for split in splits}
    session_of: dict[str, str] = {}
    for split, numbers in splits.items():
        for number in numbers:
            for utterance, session_id in _record_speaker(out_dir, number, request):
                manifests[split].append(utterance)
                session_of[utterance.utt] = session_id
            if bar is not None:
                bar.update(utts_per_speaker)
    if bar is not None:
        bar.close()

    trials = _make_trials(manifests["test"], session_of, n_trials, np.random.default_rng([seed, 3]))
    _write_lists(out_dir, manifests, trials)
    return {
        "speakers": {split: len(numbers) for split, numbers in splits.items()},
        "utterances": {split: len(utts) for split, utts in manifests.items()},
        "hours": {split: round(sum(u.seconds for u in utts) / 3600, 4) for split, utts in manifests.items()},
        "trials": {"target": sum(t.label for t in trials), "nontarget": sum(1 - t.label for t in trials)},
    }


def generate_corpus(out_dir: Path, config: SyntheticConfig, progress: bool = True) -> dict:
    """``generate`` with the settings of the config block ``corpus.synthetic``."""
    return generate(out_dir, config.train_speakers, config.test_speakers, config.utts_per_speaker,
                    config.sessions_per_speaker, config.min_seconds, config.max_seconds, config.trials,
                    config.seed, progress=progress)
