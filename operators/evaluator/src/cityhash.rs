//! CatBoost's categorical-value hash: the low 32 bits of CityHash64 (version
//! 1.0, the one CatBoost's `util/digest` carries) of the value's UTF-8 bytes,
//! and CatBoost's combination hash of a projection (`docs/ir.md`,
//! `catboost_hash` and `catboost_ctr`). Written from the algorithm's
//! description; the tests pin values CatBoost itself reports.

const K0: u64 = 0xc3a5_c85c_97cb_3127;
const K1: u64 = 0xb492_b66f_be98_f273;
const K2: u64 = 0x9ae1_6a3b_2f90_404f;
const K3: u64 = 0xc949_d7c7_509e_6557;
/// The multiplier of CatBoost's combination hash.
const COMBINE: u64 = 0x4906_ba49_4954_cb65;

/// CatBoost's hash of a categorical value: `CityHash64(bytes) & 0xffffffff`.
pub fn cat_feature_hash(bytes: &[u8]) -> u32 {
    city_hash64(bytes) as u32
}

/// One step of a projection's hash: `COMBINE * (acc + COMBINE * value)`, wrapping.
pub fn combine(acc: u64, value: u64) -> u64 {
    COMBINE.wrapping_mul(acc.wrapping_add(COMBINE.wrapping_mul(value)))
}

fn word(s: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(s[at..at + 8].try_into().expect("8 bytes"))
}

fn half(s: &[u8], at: usize) -> u64 {
    u64::from(u32::from_le_bytes(s[at..at + 4].try_into().expect("4 bytes")))
}

fn shift_mix(v: u64) -> u64 {
    v ^ (v >> 47)
}

/// The 128-to-64-bit mix (`Hash128to64`) of `low` and `high`.
fn mix16(low: u64, high: u64) -> u64 {
    const MUL: u64 = 0x9ddf_ea08_eb38_2d69;
    let a = shift_mix((low ^ high).wrapping_mul(MUL));
    let b = shift_mix((high ^ a).wrapping_mul(MUL));
    b.wrapping_mul(MUL)
}

fn len_0_to_16(s: &[u8]) -> u64 {
    let n = s.len();
    if n > 8 {
        let a = word(s, 0);
        let b = word(s, n - 8);
        return mix16(a, b.wrapping_add(n as u64).rotate_right(n as u32)) ^ b;
    }
    if n >= 4 {
        let a = half(s, 0);
        return mix16((n as u64).wrapping_add(a << 3), half(s, n - 4));
    }
    if n > 0 {
        let y = u32::from(s[0]).wrapping_add(u32::from(s[n >> 1]) << 8);
        let z = (n as u32).wrapping_add(u32::from(s[n - 1]) << 2);
        return shift_mix(u64::from(y).wrapping_mul(K2) ^ u64::from(z).wrapping_mul(K3)).wrapping_mul(K2);
    }
    K2
}

fn len_17_to_32(s: &[u8]) -> u64 {
    let n = s.len();
    let a = word(s, 0).wrapping_mul(K1);
    let b = word(s, 8);
    let c = word(s, n - 8).wrapping_mul(K2);
    let d = word(s, n - 16).wrapping_mul(K0);
    mix16(
        a.wrapping_sub(b).rotate_right(43).wrapping_add(c.rotate_right(30)).wrapping_add(d),
        a.wrapping_add((b ^ K3).rotate_right(20)).wrapping_sub(c).wrapping_add(n as u64),
    )
}

fn len_33_to_64(s: &[u8]) -> u64 {
    let n = s.len();
    let mut z = word(s, 24);
    let mut a = word(s, 0).wrapping_add((n as u64).wrapping_add(word(s, n - 16)).wrapping_mul(K0));
    let mut b = a.wrapping_add(z).rotate_right(52);
    let mut c = a.rotate_right(37);
    a = a.wrapping_add(word(s, 8));
    c = c.wrapping_add(a.rotate_right(7));
    a = a.wrapping_add(word(s, 16));
    let vf = a.wrapping_add(z);
    let vs = b.wrapping_add(a.rotate_right(31)).wrapping_add(c);
    a = word(s, 16).wrapping_add(word(s, n - 32));
    z = word(s, n - 8);
    b = a.wrapping_add(z).rotate_right(52);
    c = a.rotate_right(37);
    a = a.wrapping_add(word(s, n - 24));
    c = c.wrapping_add(a.rotate_right(7));
    a = a.wrapping_add(word(s, n - 16));
    let wf = a.wrapping_add(z);
    let ws = b.wrapping_add(a.rotate_right(31)).wrapping_add(c);
    let r = shift_mix(vf.wrapping_add(ws).wrapping_mul(K2).wrapping_add(wf.wrapping_add(vs).wrapping_mul(K0)));
    shift_mix(r.wrapping_mul(K0).wrapping_add(vs)).wrapping_mul(K2)
}

/// Two 64-bit lanes from 32 bytes at `at` and the seeds `a`, `b`.
fn weak32(s: &[u8], at: usize, mut a: u64, mut b: u64) -> (u64, u64) {
    let (w, x, y, z) = (word(s, at), word(s, at + 8), word(s, at + 16), word(s, at + 24));
    a = a.wrapping_add(w);
    b = b.wrapping_add(a).wrapping_add(z).rotate_right(21);
    let c = a;
    a = a.wrapping_add(x).wrapping_add(y);
    b = b.wrapping_add(a.rotate_right(44));
    (a.wrapping_add(z), b.wrapping_add(c))
}

/// CityHash64 (v1.0) of `s`.
pub fn city_hash64(s: &[u8]) -> u64 {
    let n = s.len();
    if n <= 16 {
        return len_0_to_16(s);
    }
    if n <= 32 {
        return len_17_to_32(s);
    }
    if n <= 64 {
        return len_33_to_64(s);
    }
    let mut x = word(s, 0);
    let mut y = word(s, n - 16) ^ K1;
    let mut z = word(s, n - 56) ^ K0;
    let mut v = weak32(s, n - 64, n as u64, y);
    let mut w = weak32(s, n - 32, (n as u64).wrapping_mul(K1), K0);
    z = z.wrapping_add(shift_mix(v.1).wrapping_mul(K1));
    x = z.wrapping_add(x).rotate_right(39).wrapping_mul(K1);
    y = y.rotate_right(33).wrapping_mul(K1);
    // Whole 64-byte chunks from the start, as many as cover all but the last 1..=64 bytes.
    let chunks = (n - 1) / 64;
    for at in (0..chunks).map(|c| c * 64) {
        x = x.wrapping_add(y).wrapping_add(v.0).wrapping_add(word(s, at + 16)).rotate_right(37).wrapping_mul(K1);
        y = y.wrapping_add(v.1).wrapping_add(word(s, at + 48)).rotate_right(42).wrapping_mul(K1);
        x ^= w.1;
        y ^= v.0;
        z = (z ^ w.0).rotate_right(33);
        v = weak32(s, at, v.1.wrapping_mul(K1), x.wrapping_add(w.0));
        w = weak32(s, at + 32, z.wrapping_add(w.1), y);
        std::mem::swap(&mut z, &mut x);
    }
    mix16(
        mix16(v.0, w.0).wrapping_add(shift_mix(y).wrapping_mul(K1)).wrapping_add(z),
        mix16(v.1, w.1).wrapping_add(x),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cat_feature_hashes_are_catboosts() {
        // (string, hash) pairs as CatBoost's Pool reports them (get_cat_feature_hash_to_string),
        // one per length class of CityHash64: 0, 1-3, 4-8, 9-16, 17-32, 33-64, 65+ bytes.
        for (s, want) in KNOWN {
            assert_eq!(cat_feature_hash(s.as_bytes()), *want, "{s:?}");
        }
    }

    pub(super) const KNOWN: &[(&str, u32)] = &[
        ("-1", 288298918),
        ("a", 3489901818),
        ("3", 593172586),
        ("hello wo", 1857193934),
        ("abcd", 345588365),
        ("", 797982799),
        ("é ü 中文", 133387744),
        ("abc", 978243121),
        ("zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz", 2725922757),
        ("abcdefghi", 3019552977),
        ("xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", 664286079),
        ("nan", 761118297),
        ("long string long string long string long string long string long string long string long string long string long string long string long string ", 2773243452),
        ("0123456789abcdef", 2645308183),
        ("qqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqq", 1806815843),
        ("The quick brown fox jumps over the lazy dog.", 1929122823),
        ("ab", 4090249022),
        ("None", 1875838226),
        ("yyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyy", 3368352023),
        ("0123456789abcdefg", 3849924666),
    ];
}
