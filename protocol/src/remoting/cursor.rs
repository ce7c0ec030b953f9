//! A cursor over big-endian fields that fails instead of panicking: every read checks the
//! bytes at hand first, and a length read from the input is only used once it fits them.

pub(crate) struct Cursor<'a> {
    buf: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Cursor<'a> {
        Cursor { buf, at: 0 }
    }

    pub(crate) fn position(&self) -> usize {
        self.at
    }

    pub(crate) fn remaining(&self) -> usize {
        self.buf.len() - self.at
    }

    pub(crate) fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], &'static str> {
        let end = self.at.checked_add(n).ok_or(what)?;
        let bytes = self.buf.get(self.at..end).ok_or(what)?;
        self.at = end;
        Ok(bytes)
    }

    fn array<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N], &'static str> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N, what)?);
        Ok(out)
    }

    pub(crate) fn u8(&mut self, what: &'static str) -> Result<u8, &'static str> {
        Ok(self.array::<1>(what)?[0])
    }

    pub(crate) fn i16(&mut self, what: &'static str) -> Result<i16, &'static str> {
        Ok(i16::from_be_bytes(self.array(what)?))
    }

    pub(crate) fn i32(&mut self, what: &'static str) -> Result<i32, &'static str> {
        Ok(i32::from_be_bytes(self.array(what)?))
    }

    pub(crate) fn i64(&mut self, what: &'static str) -> Result<i64, &'static str> {
        Ok(i64::from_be_bytes(self.array(what)?))
    }

    /// `n` bytes where `n` came from the input (negative: an error).
    pub(crate) fn sized(&mut self, n: i64, what: &'static str) -> Result<&'a [u8], &'static str> {
        self.take(usize::try_from(n).map_err(|_| what)?, what)
    }
}
