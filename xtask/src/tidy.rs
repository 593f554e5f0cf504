//! Tidy checks run as ordinary tests: house rules that a linter does not enforce.

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    /// Every `.rs` file of the project, outside build output.
    fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
        let Ok(entries) = std::fs::read_dir(dir) else { return };
        for entry in entries.flatten() {
            let path = entry.path();
            let name = entry.file_name();
            if name == "target" || name.to_string_lossy().starts_with('.') {
                continue;
            }
            if path.is_dir() {
                rust_files(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }

    #[test]
    fn every_rust_file_starts_with_a_module_doc() {
        let mut files = Vec::new();
        rust_files(&crate::repo_root(), &mut files);
        assert!(files.len() > 10, "found only {} files", files.len());
        let missing: Vec<String> = files
            .iter()
            .filter(|path| {
                let text = std::fs::read_to_string(path).unwrap_or_default();
                !text.trim_start().starts_with("//!")
            })
            .map(|path| path.display().to_string())
            .collect();
        assert!(
            missing.is_empty(),
            "files without a leading `//!` line saying what they are for:\n{}",
            missing.join("\n")
        );
    }

    #[test]
    fn no_stubs_or_ignored_tests() {
        let mut files = Vec::new();
        rust_files(&crate::repo_root(), &mut files);
        let needles = [concat!("todo", "!("), concat!("unimplemented", "!("), concat!("#[", "ignore")];
        let offenders: Vec<String> = files
            .iter()
            .filter(|path| {
                let text = std::fs::read_to_string(path).unwrap_or_default();
                needles.iter().any(|needle| text.contains(needle))
            })
            .map(|path| path.display().to_string())
            .collect();
        assert!(offenders.is_empty(), "stubs or ignored tests in:\n{}", offenders.join("\n"));
    }
}
