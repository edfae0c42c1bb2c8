//! Port: the files a journey names beside itself (a JSON Schema), read when the journey is
//! loaded, so a missing or broken one is a mistake in the file, located, never a failure at run
//! time.
//!
//! A journey names them by a path relative to its own folder, and can never reach outside it
//! (`..`, an absolute path and a symbolic link out of the folder are refused alike): a journey
//! file from a pull request must not read the function's environment or another team's files.

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

/// Reads a journey's companion files by their path relative to the journey's folder. The path
/// was checked by [`relative_path`] before it gets here.
pub trait JourneyFiles: Send + Sync {
    /// The file's text, or a plain sentence saying why it cannot be had.
    fn read(&self, relative: &str) -> Result<String, String>;
}

/// A journey read from text alone (compiled into a binary, say): it has no folder, so naming a
/// file is a mistake.
pub struct NoFiles;

impl JourneyFiles for NoFiles {
    fn read(&self, relative: &str) -> Result<String, String> {
        Err(format!(
            "{relative:?} cannot be read: this journey was loaded without its folder (load it from a file, \
             as `synthetic validate` and `synthetic run --journey` do)"
        ))
    }
}

/// The files of one folder on disk: the journey's own.
pub struct FolderFiles {
    root: PathBuf,
}

impl FolderFiles {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        FolderFiles { root: root.into() }
    }

    /// The folder of the journey file at `journey`.
    pub fn beside(journey: &Path) -> Self {
        let parent = journey.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
        FolderFiles::new(parent)
    }
}

impl JourneyFiles for FolderFiles {
    fn read(&self, relative: &str) -> Result<String, String> {
        relative_path(relative)?;
        let unreadable = |e: std::io::Error| format!("{relative:?} cannot be read beside the journey: {e}");
        let root = self.root.canonicalize().map_err(unreadable)?;
        let file = root.join(relative).canonicalize().map_err(unreadable)?;
        // A symbolic link inside the folder may still point out of it.
        if !file.starts_with(&root) {
            return Err(format!("{relative:?} leads out of the journey's folder"));
        }
        std::fs::read_to_string(&file).map_err(unreadable)
    }
}

/// Files held in memory, by relative path: for tests, and for journeys that travel with their
/// files in one bundle.
#[derive(Default)]
pub struct InMemoryFiles(BTreeMap<String, String>);

impl InMemoryFiles {
    pub fn with(mut self, relative: &str, text: &str) -> Self {
        self.0.insert(relative.to_string(), text.to_string());
        self
    }
}

impl JourneyFiles for InMemoryFiles {
    fn read(&self, relative: &str) -> Result<String, String> {
        self.0.get(relative).cloned().ok_or_else(|| format!("{relative:?} does not exist beside the journey"))
    }
}

/// `Ok` when `text` is a path inside the journey's folder: relative, without `..`, written with
/// `/` (so a journey means the same on every system).
pub fn relative_path(text: &str) -> Result<(), String> {
    let leaves = Path::new(text).components().any(|c| !matches!(c, Component::Normal(_) | Component::CurDir));
    if text.is_empty() || text.contains('\\') || text.starts_with('/') || leaves {
        return Err(format!(
            "{text:?} must be a path inside the journey's folder, relative to it, like \"schemas/product.json\" \
             (no '..', no absolute path, '/' between folders)"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_paths_inside_the_folder_are_accepted() {
        for ok in ["product.json", "schemas/product.json", "./schemas/a.b.json"] {
            assert_eq!(relative_path(ok), Ok(()), "{ok}");
        }
        for bad in ["", "../x.json", "schemas/../../x.json", "/etc/passwd", "schemas\\x.json", "a/../b.json"] {
            assert!(relative_path(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_folder_reads_its_files_and_nothing_outside_it() {
        let dir = std::env::temp_dir().join(format!("journey-files-{}", std::process::id()));
        let inside = dir.join("journeys");
        std::fs::create_dir_all(inside.join("schemas")).unwrap();
        std::fs::write(inside.join("schemas/p.json"), "{}").unwrap();
        std::fs::write(dir.join("outside.json"), "secret").unwrap();
        let files = FolderFiles::beside(&inside.join("j.toml"));
        assert_eq!(files.read("schemas/p.json").unwrap(), "{}");
        assert!(files.read("schemas/none.json").unwrap_err().contains("cannot be read beside the journey"));
        assert!(files.read("../outside.json").unwrap_err().contains("must be a path inside"));
        #[cfg(unix)]
        {
            std::os::unix::fs::symlink(dir.join("outside.json"), inside.join("link.json")).unwrap();
            assert!(files.read("link.json").unwrap_err().contains("leads out of the journey's folder"));
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
