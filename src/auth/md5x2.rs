//! MD5 of the same URL under two keys at once: which key signed a URL.
//!
//! Why our own compression function next to the `md-5` crate (which still
//! hashes what is too long for the buffer here): MD5 turns each 64-byte
//! block through 64 steps, each depending on the one before, so one digest
//! leaves a CPU core mostly waiting on that chain. With two keys in force
//! (primary and backup; a forged URL meets both) the two digests are
//! independent: stepping them in lockstep lets the core run both chains
//! side by side, and the pair costs about 1.35 times one digest instead of
//! twice. `md-5` hashes one message at a time, and no maintained crate
//! offers interleaved lanes. The steps are RFC 1321's; every digest is
//! checked against `md-5` by the tests below, for every length to past
//! the buffer and for lanes of different lengths.
//!
//! No secret-dependent branch or memory index: the steps are fixed
//! arithmetic, and the message's length (public: a key's length does not
//! change between requests) picks the blocks.

use md5::{Digest, Md5};
use subtle::ConstantTimeEq;

use crate::keys::Secret;

/// A message given to [`first_match`]: called with a key, it writes the
/// bytes to hash for that key, in order, to the sink it is given.
pub trait Message: Fn(&Secret, &mut dyn FnMut(&[u8])) {}
impl<F: Fn(&Secret, &mut dyn FnMut(&[u8]))> Message for F {}

/// The key, then `tail` (Tencent `KEY + StreamName + txTime`, Alibaba B
/// and C).
pub fn key_then<'m, const N: usize>(tail: [&'m str; N]) -> impl Message + 'm {
    move |key: &Secret, out: &mut dyn FnMut(&[u8])| {
        out(key.expose().as_bytes());
        for part in tail {
            out(part.as_bytes());
        }
    }
}

/// `head`, then the key (Alibaba A).
pub fn then_key<'m, const N: usize>(head: [&'m str; N]) -> impl Message + 'm {
    move |key: &Secret, out: &mut dyn FnMut(&[u8])| {
        for part in head {
            out(part.as_bytes());
        }
        out(key.expose().as_bytes());
    }
}

/// Index (as the iterator gives it) of the first key under which the MD5
/// of `message` is `signature` (compared in constant time), keys hashed two
/// at a time.
///
/// Why stopping at the first match is safe: see `auth::matching_key`; here
/// both keys of a pair are always hashed, so with two keys a URL signed by
/// the primary, one signed by the backup and a forged one cost the same.
pub fn first_match<'k>(
    keys: impl IntoIterator<Item = (usize, &'k Secret)>,
    message: impl Message,
    signature: &[u8; 16],
) -> Option<usize> {
    // One comparison of the whole digest (`ct_eq` on the bytes would hide
    // each of the 16 from the optimizer separately).
    let want = u128::from_le_bytes(*signature);
    let is = |digest: [u8; 16]| bool::from(u128::from_le_bytes(digest).ct_eq(&want));
    let mut keys = keys.into_iter();
    while let Some((i, a)) = keys.next() {
        let Some((j, b)) = keys.next() else {
            return is(digest_one(&message, a)).then_some(i);
        };
        let [da, db] = digest_pair(&message, a, b);
        if is(da) {
            return Some(i);
        }
        if is(db) {
            return Some(j);
        }
    }
    None
}

/// MD5 of `message` under one key.
pub fn digest_one(message: &impl Message, key: &Secret) -> [u8; 16] {
    let mut p = Padded::new();
    message(key, &mut |bytes| p.push(bytes));
    let Some(n) = p.finish() else {
        // Longer than the buffer: the `md-5` crate streams it.
        let mut h = Md5::new();
        message(key, &mut |b| h.update(b));
        return h.finalize().into();
    };
    let mut state = IV;
    for i in 0..n {
        compress1(&mut state, p.block(i));
    }
    to_bytes(state)
}

/// MD5 of `message` under two keys, interleaved when both fit [`Padded`].
fn digest_pair(message: &impl Message, a: &Secret, b: &Secret) -> [[u8; 16]; 2] {
    let (mut pa, mut pb) = (Padded::new(), Padded::new());
    message(a, &mut |bytes| pa.push(bytes));
    message(b, &mut |bytes| pb.push(bytes));
    let (Some(na), Some(nb)) = (pa.finish(), pb.finish()) else {
        // A message longer than the buffer (a long signed path): one at a time.
        return [digest_one(message, a), digest_one(message, b)];
    };
    let mut state = [IV; 2];
    let both = na.min(nb);
    for i in 0..both {
        compress2(&mut state, [pa.block(i), pb.block(i)]);
    }
    for i in both..na {
        compress1(&mut state[0], pa.block(i));
    }
    for i in both..nb {
        compress1(&mut state[1], pb.block(i));
    }
    state.map(to_bytes)
}

/// Blocks a message may fill, with its padding, to be hashed here: 247
/// bytes of message (a key, a signed path of some 200 bytes and a time);
/// longer ones go to the `md-5` crate.
const PADDED_BLOCKS: usize = 4;
const PADDED_BYTES: usize = PADDED_BLOCKS * 64;

/// A message and its MD5 padding, on the stack.
struct Padded {
    blocks: [[u8; 64]; PADDED_BLOCKS],
    len: usize,
    /// More was pushed than fits with the padding.
    over: bool,
}

impl Padded {
    fn new() -> Self {
        Padded {
            blocks: [[0; 64]; PADDED_BLOCKS],
            len: 0,
            over: false,
        }
    }

    fn push(&mut self, bytes: &[u8]) {
        let end = self.len + bytes.len();
        // The padding takes at least 9 bytes: `0x80` and the 64-bit length.
        match self.blocks.as_flattened_mut().get_mut(self.len..end) {
            Some(to) if end + 9 <= PADDED_BYTES && !self.over => {
                to.copy_from_slice(bytes);
                self.len = end;
            }
            _ => self.over = true,
        }
    }

    /// Pads the message (RFC 1321 §3.1–3.2); the number of blocks, or
    /// `None` when it did not fit.
    fn finish(&mut self) -> Option<usize> {
        if self.over {
            return None;
        }
        let blocks = (self.len + 9).div_ceil(64);
        let end = blocks * 64;
        let buf = self.blocks.as_flattened_mut();
        buf[self.len] = 0x80;
        // The buffer started zeroed and only the message was written.
        let bits = (self.len as u64).wrapping_mul(8);
        buf[end - 8..end].copy_from_slice(&bits.to_le_bytes());
        Some(blocks)
    }

    fn block(&self, i: usize) -> &[u8; 64] {
        &self.blocks[i]
    }
}

const IV: [u32; 4] = [0x6745_2301, 0xefcd_ab89, 0x98ba_dcfe, 0x1032_5476];

/// RFC 1321 §3.4's sine table.
const K: [u32; 64] = [
    0xd76a_a478,
    0xe8c7_b756,
    0x2420_70db,
    0xc1bd_ceee,
    0xf57c_0faf,
    0x4787_c62a,
    0xa830_4613,
    0xfd46_9501,
    0x6980_98d8,
    0x8b44_f7af,
    0xffff_5bb1,
    0x895c_d7be,
    0x6b90_1122,
    0xfd98_7193,
    0xa679_438e,
    0x49b4_0821,
    0xf61e_2562,
    0xc040_b340,
    0x265e_5a51,
    0xe9b6_c7aa,
    0xd62f_105d,
    0x0244_1453,
    0xd8a1_e681,
    0xe7d3_fbc8,
    0x21e1_cde6,
    0xc337_07d6,
    0xf4d5_0d87,
    0x455a_14ed,
    0xa9e3_e905,
    0xfcef_a3f8,
    0x676f_02d9,
    0x8d2a_4c8a,
    0xfffa_3942,
    0x8771_f681,
    0x6d9d_6122,
    0xfde5_380c,
    0xa4be_ea44,
    0x4bde_cfa9,
    0xf6bb_4b60,
    0xbebf_bc70,
    0x289b_7ec6,
    0xeaa1_27fa,
    0xd4ef_3085,
    0x0488_1d05,
    0xd9d4_d039,
    0xe6db_99e5,
    0x1fa2_7cf8,
    0xc4ac_5665,
    0xf429_2244,
    0x432a_ff97,
    0xab94_23a7,
    0xfc93_a039,
    0x655b_59c3,
    0x8f0c_cc92,
    0xffef_f47d,
    0x8584_5dd1,
    0x6fa8_7e4f,
    0xfe2c_e6e0,
    0xa301_4314,
    0x4e08_11a1,
    0xf753_7e82,
    0xbd3a_f235,
    0x2ad7_d2bb,
    0xeb86_d391,
];

/// Two lanes. Not inlined, like [`compress1`]: one copy of each serves
/// every scheme.
#[inline(never)]
fn compress2(state: &mut [[u32; 4]; 2], blocks: [&[u8; 64]; 2]) {
    compress(state, blocks);
}

/// One lane: a single key, or what is left of the longer of two messages.
#[inline(never)]
fn compress1(state: &mut [u32; 4], block: &[u8; 64]) {
    compress(std::array::from_mut(state), [block]);
}

fn to_bytes(state: [u32; 4]) -> [u8; 16] {
    let mut out = [0; 16];
    for (o, w) in out.chunks_exact_mut(4).zip(state) {
        o.copy_from_slice(&w.to_le_bytes());
    }
    out
}

/// One block for each of `N` states, every step taken for all lanes before
/// the next.
///
/// Why four steps per pass of a loop the compiler may not unroll (the trip
/// count goes through `black_box`): written out as 64 straight steps, the
/// compiler's scheduler put all of one lane's steps before the other's,
/// and the two chains no longer ran side by side (a pair then cost as much
/// as two single digests). A pass of four steps of both lanes is too short
/// to reorder that way and costs a counter and table lookups.
#[inline(always)]
fn compress<const N: usize>(state: &mut [[u32; 4]; N], blocks: [&[u8; 64]; N]) {
    // The words are read once, before the steps. Read inside them, where
    // each load sits on the chain, a first-key verify took 250–300 ns
    // against 240–265 (measured; the likely cause is loads waiting on the
    // padding's narrower stores to the same bytes).
    let m: [[u32; 16]; N] = std::array::from_fn(|l| {
        let b = blocks[l];
        std::array::from_fn(|g| {
            u32::from_le_bytes([b[4 * g], b[4 * g + 1], b[4 * g + 2], b[4 * g + 3]])
        })
    });
    let word = |l: usize, g: usize| m[l][g];
    let mut v = *state;
    macro_rules! step {
        ($f:expr, $k:expr, $g:expr, $s:expr) => {
            for l in 0..N {
                let [a, b, c, d] = v[l];
                let t = a
                    .wrapping_add($f(b, c, d))
                    .wrapping_add(K[$k])
                    .wrapping_add(word(l, $g));
                v[l] = [d, b.wrapping_add(t.rotate_left($s)), b, c];
            }
        };
    }
    macro_rules! round {
        ($f:expr, $r:expr, $g:expr, [$s0:expr, $s1:expr, $s2:expr, $s3:expr]) => {
            for q in 0..std::hint::black_box(4usize) {
                let j = (q & 3) * 4;
                step!($f, $r * 16 + j, $g(j) % 16, $s0);
                step!($f, $r * 16 + j + 1, $g(j + 1) % 16, $s1);
                step!($f, $r * 16 + j + 2, $g(j + 2) % 16, $s2);
                step!($f, $r * 16 + j + 3, $g(j + 3) % 16, $s3);
            }
        };
    }
    // RFC 1321 §3.4: each round's function, message word and shifts.
    round!(
        |b: u32, c: u32, d: u32| d ^ (b & (c ^ d)),
        0,
        |j: usize| j,
        [7, 12, 17, 22]
    );
    round!(
        |b: u32, c: u32, d: u32| c ^ (d & (b ^ c)),
        1,
        |j: usize| 5 * j + 1,
        [5, 9, 14, 20]
    );
    round!(
        |b: u32, c: u32, d: u32| b ^ c ^ d,
        2,
        |j: usize| 3 * j + 5,
        [4, 11, 16, 23]
    );
    round!(
        |b: u32, c: u32, d: u32| c ^ (b | !d),
        3,
        |j: usize| 7 * j,
        [6, 10, 15, 21]
    );
    for (s, v) in state.iter_mut().zip(v) {
        for (w, x) in s.iter_mut().zip(v) {
            *w = w.wrapping_add(x);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    use crate::keys::KeySet;

    fn crate_md5(parts: &[&[u8]]) -> [u8; 16] {
        let mut h = Md5::new();
        for p in parts {
            h.update(p);
        }
        h.finalize().into()
    }

    /// `key` then `tail`, the shape of most schemes' messages.
    fn keyed(tail: &[u8]) -> impl Message + '_ {
        move |k: &Secret, out: &mut dyn FnMut(&[u8])| {
            out(k.expose().as_bytes());
            out(tail);
        }
    }

    #[test]
    fn every_length_matches_the_md5_crate() {
        // Across every block boundary and past the buffer's end.
        for len in 0..PADDED_BYTES + 80 {
            let tail: Vec<u8> = (0..len).map(|i| (i * 7 + len) as u8).collect();
            let (a, b) = (Secret::new("k"), Secret::new("another key"));
            let msg = keyed(&tail);
            let [da, db] = digest_pair(&msg, &a, &b);
            assert_eq!(da, crate_md5(&[b"k", &tail]), "len {len}");
            assert_eq!(db, crate_md5(&[b"another key", &tail]), "len {len}");
            assert_eq!(digest_one(&msg, &a), da);
        }
    }

    #[test]
    fn rfc_1321_vectors() {
        let empty = |_: &Secret, _: &mut dyn FnMut(&[u8])| {};
        let abc = |_: &Secret, out: &mut dyn FnMut(&[u8])| out(b"abc");
        let k = Secret::new("unused");
        assert_eq!(
            hex::encode(digest_pair(&empty, &k, &k)[0]),
            "d41d8cd98f00b204e9800998ecf8427e"
        );
        assert_eq!(
            hex::encode(digest_pair(&abc, &k, &k)[1]),
            "900150983cd24fb0d6963f7d28e17f72"
        );
    }

    #[test]
    fn first_match_names_the_first_key_that_signed() {
        let tail = b"/live/stream1700000000";
        let want = |key: &str| crate_md5(&[key.as_bytes(), tail]);
        let keys = |ks: &[&str]| KeySet::new(ks.iter().map(|k| Secret::new(*k)).collect());
        let msg = keyed(tail);
        for n in 0..6 {
            let names: Vec<String> = (0..n)
                .map(|i| format!("key-{i}-{}", "x".repeat(i * 13)))
                .collect();
            let set = keys(&names.iter().map(String::as_str).collect::<Vec<_>>());
            for (i, name) in names.iter().enumerate() {
                let d = want(name);
                assert_eq!(
                    first_match(set.iter().enumerate(), &msg, &d),
                    Some(i),
                    "{n} keys"
                );
            }
            assert_eq!(
                first_match(set.iter().enumerate(), &msg, &want("none of them")),
                None
            );
        }
        // The same key twice: the first.
        let d = want("same");
        assert_eq!(
            first_match(keys(&["same", "same"]).iter().enumerate(), &msg, &d),
            Some(0)
        );
    }

    proptest! {
        #[test]
        fn pairs_of_any_messages_match_the_md5_crate(
            ka in ".{0,80}", kb in ".{0,80}",
            tail in proptest::collection::vec(any::<u8>(), 0..600),
        ) {
            let (a, b) = (Secret::new(ka.clone()), Secret::new(kb.clone()));
            let [da, db] = digest_pair(&keyed(&tail), &a, &b);
            prop_assert_eq!(da, crate_md5(&[ka.as_bytes(), &tail]));
            prop_assert_eq!(db, crate_md5(&[kb.as_bytes(), &tail]));
        }
    }
}
