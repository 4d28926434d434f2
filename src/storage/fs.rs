//! The filesystem facade the storage is written against: `std::fs` for real nodes, turmoil's
//! simulated filesystem in simulation (which loses unsynced writes on a crash). The same WAL code
//! runs on both, so the code a real node runs is the code the simulator crashes.

use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// A file opened for appending.
pub trait AppendFile {
    /// Appends `data` (not yet durable).
    fn append(&mut self, data: &[u8]) -> io::Result<()>;
    /// Makes everything appended so far durable.
    fn sync(&mut self) -> io::Result<()>;
    /// Makes the next `len` bytes after the write position exist, zero-filled and durable, so
    /// that appends within them change no file size and a sync flushes data, not metadata (as
    /// etcd preallocates its WAL segments). A file that cannot does nothing.
    fn preallocate(&mut self, len: u64) -> io::Result<()> {
        let _ = len;
        Ok(())
    }
}

/// The few filesystem operations the storage needs.
pub trait Fs: Clone + 'static {
    /// A file opened for appending.
    type File: AppendFile;
    /// Creates a directory and its parents.
    fn create_dir_all(&self, dir: &Path) -> io::Result<()>;
    /// The files in `dir`, sorted by name.
    fn list(&self, dir: &Path) -> io::Result<Vec<PathBuf>>;
    /// Opens (creating if needed) a file for appending.
    fn open_append(&self, path: &Path) -> io::Result<Self::File>;
    /// Reads a whole file.
    fn read(&self, path: &Path) -> io::Result<Vec<u8>>;
    /// Creates (or replaces) a file with `data`, durably.
    fn write_synced(&self, path: &Path, data: &[u8]) -> io::Result<()>;
    /// Cuts a file to `len` bytes, durably.
    fn truncate(&self, path: &Path, len: u64) -> io::Result<()>;
    /// Renames a file.
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// Removes a file.
    fn remove(&self, path: &Path) -> io::Result<()>;
    /// Makes the directory's entries (creations, renames, removals) durable.
    fn sync_dir(&self, dir: &Path) -> io::Result<()>;

    /// Replaces `path` with `data` atomically: write a temporary file, sync it, rename it over
    /// the target, sync the directory. A crash leaves either the old file or the new one.
    fn write_atomic(&self, path: &Path, data: &[u8]) -> io::Result<()> {
        let tmp = path.with_extension("tmp");
        self.write_synced(&tmp, data)?;
        self.rename(&tmp, path)?;
        self.sync_dir(path.parent().unwrap_or(Path::new(".")))
    }
}

/// The real filesystem.
#[derive(Clone, Copy, Debug, Default)]
pub struct StdFs;

impl AppendFile for std::fs::File {
    fn append(&mut self, data: &[u8]) -> io::Result<()> {
        self.write_all(data)
    }

    fn sync(&mut self) -> io::Result<()> {
        self.sync_data()
    }

    fn preallocate(&mut self, len: u64) -> io::Result<()> {
        let at = self.stream_position()?;
        let mut size = self.metadata()?.len();
        if size < at + len {
            // Written zeros, not fallocate: ext4 keeps fallocated blocks as unwritten extents,
            // and the first write to each converts it, which is a metadata change again.
            let zeros = vec![0u8; 1 << 20];
            self.seek(SeekFrom::End(0))?;
            while size < at + len {
                let n = zeros.len().min((at + len - size) as usize);
                self.write_all(&zeros[..n])?;
                size += n as u64;
            }
            self.sync_all()?;
            self.seek(SeekFrom::Start(at))?;
        }
        Ok(())
    }
}

impl Fs for StdFs {
    type File = std::fs::File;

    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        std::fs::create_dir_all(dir)
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<PathBuf>> {
        let mut paths: Vec<PathBuf> =
            std::fs::read_dir(dir)?.map(|e| e.map(|e| e.path())).collect::<io::Result<_>>()?;
        paths.sort();
        Ok(paths)
    }

    fn open_append(&self, path: &Path) -> io::Result<Self::File> {
        // Not O_APPEND: writes go to the file position, so that `preallocate` can put zeros
        // ahead of it. Positioned at the end, a single writer appends all the same.
        let mut file =
            std::fs::OpenOptions::new().create(true).write(true).truncate(false).open(path)?;
        file.seek(SeekFrom::End(0))?;
        Ok(file)
    }

    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        let mut data = Vec::new();
        std::fs::File::open(path)?.read_to_end(&mut data)?;
        Ok(data)
    }

    fn write_synced(&self, path: &Path, data: &[u8]) -> io::Result<()> {
        let mut file = std::fs::File::create(path)?;
        file.write_all(data)?;
        file.sync_all()
    }

    fn truncate(&self, path: &Path, len: u64) -> io::Result<()> {
        let file = std::fs::OpenOptions::new().write(true).open(path)?;
        file.set_len(len)?;
        file.sync_all()
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        std::fs::rename(from, to)
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        std::fs::remove_file(path)
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        std::fs::File::open(dir)?.sync_all()
    }
}

/// turmoil's simulated filesystem: one per simulated host; unsynced writes vanish on a crash.
/// Only usable from inside a simulated host.
#[derive(Clone, Copy, Debug, Default)]
pub struct SimFs;

mod sim {
    pub use turmoil::fs::shim::std::fs::{
        File, OpenOptions, create_dir_all, read, read_dir, remove_file, rename, sync_dir,
    };
}

impl AppendFile for sim::File {
    fn append(&mut self, data: &[u8]) -> io::Result<()> {
        self.write_all(data)
    }

    fn sync(&mut self) -> io::Result<()> {
        self.sync_all()
    }
}

impl Fs for SimFs {
    type File = sim::File;

    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        sim::create_dir_all(dir)
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<PathBuf>> {
        let mut paths: Vec<PathBuf> =
            sim::read_dir(dir)?.map(|e| e.map(|e| e.path())).collect::<io::Result<_>>()?;
        paths.sort();
        Ok(paths)
    }

    fn open_append(&self, path: &Path) -> io::Result<Self::File> {
        sim::OpenOptions::new().create(true).append(true).open(path)
    }

    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        sim::read(path)
    }

    fn write_synced(&self, path: &Path, data: &[u8]) -> io::Result<()> {
        let mut file = sim::File::create(path)?;
        file.write_all(data)?;
        file.sync_all()
    }

    fn truncate(&self, path: &Path, len: u64) -> io::Result<()> {
        let file = sim::OpenOptions::new().write(true).open(path)?;
        file.set_len(len)?;
        file.sync_all()
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        sim::rename(from, to)
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        sim::remove_file(path)
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        sim::sync_dir(dir)
    }
}
