//! The block compressor: input cut into fixed-size blocks at fixed offsets, each batch's
//! blocks compressed in parallel, the output a function of the input alone (see the parent
//! module for the formats).

use super::Compression;
use rayon::prelude::*;

/// gzip level, libdeflate's. Measured on 1.6 GB of Debian packages (binaries, libraries,
/// archives, text; bench/realistic): level 6 in 1 MiB blocks gives 1.7 % fewer bytes than
/// `pigz -6` at 3.4 times its speed on 2 cores; level 4 is as large as zlib's level 6.
pub const GZIP_LEVEL: i32 = 6;
/// Input bytes per gzip member. A member starts afresh (no dictionary), so larger blocks
/// compress better; 1 MiB loses 1.2 % against one stream, 128 KiB 2.4 %.
pub const GZIP_BLOCK: usize = 1024 * 1024;
/// zstd level: the zstd command's default.
pub const ZSTD_LEVEL: i32 = 3;
/// Input bytes per zstd frame: 4 MiB frames give fewer bytes than `zstd -3 -T2` (whose jobs
/// are larger but overlap less), 1 MiB frames 2.7 % more.
pub const ZSTD_BLOCK: usize = 4 * 1024 * 1024;
/// Input bytes gathered before a batch is compressed: a multiple of both block sizes, so
/// batches never split a block, and of two zstd frames, so a batch keeps two cores busy.
pub const BATCH: usize = 8 * 1024 * 1024;
/// Chi-square statistic of a gzip block's byte frequencies against uniform below which the
/// block is stored, not deflated. Random bytes give about 255 (± 23); the entropy shortfall
/// from 8 bits is about chi-square / (2 n ln 2), so 1800 on a 1 MiB block is 7.999 bits per
/// byte. Compressible data, even machine code, is far above.
pub const STORED_CHI_SQUARE: u64 = 1800;

/// The parameters that decide `codec`'s output bytes, as a name: what a compressed digest
/// kept outside the store is filed under, so that changing a constant here (or the
/// libraries) never serves a digest of other bytes.
pub fn parameters(codec: Compression) -> Option<String> {
    match codec {
        Compression::Gzip => Some(format!(
            "gzip-libdeflate{GZIP_LEVEL}-{GZIP_BLOCK}-stored{STORED_CHI_SQUARE}"
        )),
        Compression::Zstd => Some(format!("zstd{ZSTD_LEVEL}-{ZSTD_BLOCK}")),
        Compression::ZstdChunked => Some(format!(
            "zstd-chunked{}-{}",
            super::chunked::LEVEL,
            super::chunked::CHUNK
        )),
        Compression::None => None,
    }
}

/// Compresses one block into a member or frame of its own.
type BlockCompressor = fn(&[u8]) -> Vec<u8>;

/// One block of a batch and how it is compressed.
#[derive(Debug, Clone, Copy)]
pub struct BlockJob {
    start: usize,
    end: usize,
    compress: BlockCompressor,
}

impl BlockJob {
    /// The block's output, from the batch it was cut from.
    pub fn run(&self, batch: &[u8]) -> Vec<u8> {
        (self.compress)(&batch[self.start..self.end])
    }
}

/// The state of one compressed stream, fed a batch at a time.
#[derive(Debug)]
pub struct BlockStream {
    codec: Compression,
    total_in: u64,
}

impl BlockStream {
    /// A new stream.
    pub fn new(codec: Compression) -> BlockStream {
        BlockStream { codec, total_in: 0 }
    }

    /// Compresses `batch`, whose length must be a multiple of [`BATCH`] unless it is the last
    /// one, and returns the output bytes in order.
    pub fn compress(&mut self, batch: &[u8]) -> Vec<Vec<u8>> {
        let jobs = self.jobs(batch.len());
        jobs.par_iter().map(|job| job.run(batch)).collect()
    }

    /// The blocks of the next batch of `len` bytes, each to be compressed on its own (in any
    /// order, on any thread) and written in order.
    pub fn jobs(&mut self, len: usize) -> Vec<BlockJob> {
        self.total_in += len as u64;
        let (block, compress): (usize, BlockCompressor) = match self.codec {
            // A plain stream passes its input through, in one piece.
            Compression::None => (len.max(1), <[u8]>::to_vec),
            Compression::Gzip => (GZIP_BLOCK, gzip_member),
            // zstd:chunked cuts frames by the tar's files, not in blocks
            // (`encoder::run_chunked`): asked here, it gets plain zstd's.
            Compression::Zstd | Compression::ZstdChunked => (ZSTD_BLOCK, zstd_frame),
        };
        (0..len)
            .step_by(block)
            .map(|start| BlockJob {
                start,
                end: (start + block).min(len),
                compress,
            })
            .collect()
    }

    /// Ends the stream: returns what follows the last block (for empty input, one empty
    /// member or frame, so that the stream is still a valid one).
    pub fn finish(self) -> Vec<u8> {
        match self.codec {
            Compression::None => Vec::new(),
            Compression::Gzip if self.total_in == 0 => gzip_member(&[]),
            Compression::Zstd | Compression::ZstdChunked if self.total_in == 0 => zstd_frame(&[]),
            _ => Vec::new(),
        }
    }
}

/// One gzip member holding `input`: header (no name, mtime 0, OS unknown), raw deflate
/// (stored blocks when `input` looks incompressible), CRC-32 and length. A gzip file may be
/// any sequence of members, and every gzip reader (gzip, Go's, zlib's gunzip loop, Python's)
/// reads them all.
fn gzip_member(input: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(input.len() + input.len() / 8 + 64);
    out.extend_from_slice(&[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 255]);
    if looks_random(input) {
        stored_blocks(input, &mut out);
    } else {
        let level =
            libdeflater::CompressionLvl::new(GZIP_LEVEL).expect("GZIP_LEVEL is a libdeflate level");
        let mut c = libdeflater::Compressor::new(level);
        let at = out.len();
        out.resize(at + c.deflate_compress_bound(input.len()), 0);
        let n = c
            .deflate_compress(input, &mut out[at..])
            .expect("the bound libdeflate gives always fits");
        out.truncate(at + n);
    }
    out.extend_from_slice(&crc32fast::hash(input).to_le_bytes());
    out.extend_from_slice(&(input.len() as u32).to_le_bytes());
    out
}

/// Whether the byte frequencies of `data` are close enough to uniform that deflate cannot
/// gain (never for short data). Chi-square is 256 Σ c² / n - n; the comparison is kept in
/// integers: 256 Σ c² < n (n + T).
pub(crate) fn looks_random(data: &[u8]) -> bool {
    if data.len() < 4096 {
        return false;
    }
    let mut counts = [0u64; 256];
    for &b in data {
        counts[b as usize] += 1;
    }
    let n = data.len() as u64;
    let sum_squares: u64 = counts.iter().map(|c| c * c).sum();
    256 * sum_squares < n * (n + STORED_CHI_SQUARE)
}

/// `input` as stored deflate blocks (at most 65535 bytes each), the last one final.
fn stored_blocks(input: &[u8], out: &mut Vec<u8>) {
    let parts: Vec<&[u8]> = if input.is_empty() {
        vec![&[]]
    } else {
        input.chunks(65535).collect()
    };
    let last = parts.len() - 1;
    for (i, part) in parts.into_iter().enumerate() {
        let len = part.len() as u16;
        out.push(u8::from(i == last)); // BFINAL, BTYPE 00 (stored), padded to the byte
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&(!len).to_le_bytes());
        out.extend_from_slice(part);
    }
}

/// One zstd frame holding `input`.
fn zstd_frame(input: &[u8]) -> Vec<u8> {
    zstd::bulk::compress(input, ZSTD_LEVEL).expect("zstd of in-memory data cannot fail")
}
