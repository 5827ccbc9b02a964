//! The `strata` command: parses arguments, runs, and turns errors into one line on stderr.

use std::process::ExitCode;

fn main() -> ExitCode {
    std::panic::set_hook(Box::new(|info| {
        let text = info.to_string().replace('\n', " ");
        eprintln!("strata: internal error (please report): {text}");
    }));
    match strata::cli::run(std::env::args_os()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("strata: error: {}", strata::cli::error_line(&err));
            ExitCode::from(strata::cli::exit_code(&err))
        }
    }
}
