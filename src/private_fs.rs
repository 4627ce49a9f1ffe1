//! Files and folders only the service may read: the mode of everything Zaal puts under
//! `data.dir` and `logs.dir`.
//!
//! Both hold personal or secret data (log records with addresses and names; argon2 hashes,
//! session digests, ACME keys), so every folder Zaal creates there is `0700` and every file
//! `0600`. Two layers keep it so: the `zaal` binary narrows its umask to `077` before it does
//! anything ([`restrict_umask`]), which covers files made by libraries (SQLite's `-wal` and
//! `-shm`, temporary files), and the code that creates a folder or file asks for the private
//! mode explicitly, so the library is right even in a process that kept a wider umask. A folder
//! the operator made is never changed: its mode is theirs (a log shipper's group may need it),
//! and [`existing_dir_is_open`] lets start-up say when it lets other users in. This module only
//! creates; it never deletes, and never widens a mode.

use std::io;
use std::path::Path;

/// Narrows the process's umask to `077`: whatever is created from now on is private to the
/// service's user, whichever library creates it.
pub fn restrict_umask() {
    #[cfg(unix)]
    {
        rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o077));
    }
}

/// Creates `dir` and any missing parents with mode `0700`; a folder that exists already keeps
/// the mode it has.
pub fn create_dir_all(dir: &Path) -> io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(dir)
}

/// Creates an empty file with mode `0600` unless something exists at `path` already. Used before
/// a library (SQLite) creates the file itself with a wider default mode.
pub fn create_file_if_missing(path: &Path) -> io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    match options.open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}

/// The mode of `dir` when users other than the service's own (its group, or anyone) may enter
/// or list it; `None` when it is private (or cannot be read, which start-up reports elsewhere).
pub fn existing_dir_is_open(dir: &Path) -> Option<u32> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir).ok()?.permissions().mode() & 0o777;
        (mode & 0o077 != 0).then_some(mode)
    }
    #[cfg(not(unix))]
    {
        let _ = dir;
        None
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    fn scratch() -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "zaal-private-fs-{}-{}",
            std::process::id(),
            rand::random::<u32>()
        ));
        std::fs::create_dir(&dir).unwrap();
        dir
    }

    #[test]
    fn created_folders_and_files_are_private_and_existing_ones_are_left_alone() {
        let root = scratch();
        // Whatever umask the test process has, the modes asked for are at most private.
        let nested = root.join("a/b");
        create_dir_all(&nested).unwrap();
        assert_eq!(mode(&root.join("a")) & 0o077, 0);
        assert_eq!(mode(&nested) & 0o077, 0);
        let file = nested.join("f");
        create_file_if_missing(&file).unwrap();
        assert_eq!(mode(&file) & 0o077, 0);

        std::fs::set_permissions(&nested, std::fs::Permissions::from_mode(0o750)).unwrap();
        std::fs::write(&file, "kept").unwrap();
        create_dir_all(&nested).unwrap();
        create_file_if_missing(&file).unwrap();
        assert_eq!(mode(&nested), 0o750, "an existing folder keeps its mode");
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "kept");
        assert_eq!(existing_dir_is_open(&nested), Some(0o750));
        std::fs::set_permissions(&nested, std::fs::Permissions::from_mode(0o700)).unwrap();
        assert_eq!(existing_dir_is_open(&nested), None);
        std::fs::remove_dir_all(&root).unwrap();
    }
}
