//! Finding the file: `--config`, else `MAMMOTH_CONFIG`, else `./mammoth.tsk`, else defaults.

use std::collections::HashMap;
use std::path::Path;

use mammoth_config::{Config, EmptyEnv};

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap_or(path)).unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(path, text).unwrap_or_else(|e| panic!("{e}"));
}

fn env_var(path: &str) -> HashMap<String, String> {
    HashMap::from([("MAMMOTH_CONFIG".to_owned(), path.to_owned())])
}

#[test]
fn no_flag_no_variable_no_file_means_defaults_and_no_path() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let (config, used) =
        Config::load_with(None, &EmptyEnv, dir.path()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((config, used), (Config::default(), None));
}

#[test]
fn working_directory_file_is_used_when_nothing_else_is_named() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    write(&dir.path().join("mammoth.tsk"), "[app]\nname: \"cwd\"\n");
    let (config, used) =
        Config::load_with(None, &EmptyEnv, dir.path()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(config.app.name, "cwd");
    assert_eq!(used, Some(dir.path().join("mammoth.tsk")));
}

#[test]
fn variable_beats_the_working_directory_and_the_flag_beats_both() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    write(&dir.path().join("mammoth.tsk"), "[app]\nname: \"cwd\"\n");
    write(&dir.path().join("env.tsk"), "[app]\nname: \"env\"\n");
    write(&dir.path().join("flag.tsk"), "[app]\nname: \"flag\"\n");
    let env = env_var("env.tsk");
    let (c, _) = Config::load_with(None, &env, dir.path()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.app.name, "env");
    let (c, used) = Config::load_with(Some(Path::new("flag.tsk")), &env, dir.path())
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        (c.app.name.as_str(), used),
        ("flag", Some(dir.path().join("flag.tsk")))
    );
    let (c, _) =
        Config::load_with(None, &env_var(""), dir.path()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.app.name, "cwd", "an empty MAMMOTH_CONFIG counts as unset");
}

#[test]
fn missing_named_file_is_e015_and_says_who_named_it() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let err =
        Config::load_with(Some(Path::new("nope.tsk")), &EmptyEnv, dir.path()).expect_err("missing");
    assert_eq!(err.code().as_str(), "E015");
    assert!(
        err.to_string()
            .starts_with("nope.tsk: error[E015]: config file not found"),
        "{err}"
    );
    assert!(err.to_string().contains("--config"));
    let err = Config::load_with(None, &env_var("gone.tsk"), dir.path()).expect_err("missing");
    assert_eq!(err.code().as_str(), "E015");
    assert!(err.to_string().contains("MAMMOTH_CONFIG"));
    let err = Config::load_with(Some(dir.path()), &EmptyEnv, dir.path()).expect_err("a directory");
    assert!(err.to_string().contains("not a regular file"));
}

#[test]
fn loaded_file_errors_name_the_path_as_given_and_files_resolve_next_to_it() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    write(
        &dir.path().join("conf/app.tsk"),
        "[app]\nname: @file(\"name.txt\")\nenvironment: x\n",
    );
    write(&dir.path().join("conf/name.txt"), "from-file\n");
    let err = Config::load_with(Some(Path::new("conf/app.tsk")), &EmptyEnv, dir.path())
        .expect_err("bare word");
    assert!(
        err.to_string()
            .starts_with("conf/app.tsk:3:14: error[E003]"),
        "{err}"
    );
    write(
        &dir.path().join("conf/app.tsk"),
        "[app]\nname: @file(\"name.txt\")\n",
    );
    let (c, _) = Config::load_with(Some(Path::new("conf/app.tsk")), &EmptyEnv, dir.path())
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.app.name, "from-file");
}

#[test]
fn oversized_config_file_is_e014_before_parsing() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    write(
        &dir.path().join("big.tsk"),
        &"#".repeat(mammoth_config::MAX_FILE_BYTES + 1),
    );
    let err =
        Config::load_with(Some(Path::new("big.tsk")), &EmptyEnv, dir.path()).expect_err("big");
    assert_eq!(err.code().as_str(), "E014");
}
