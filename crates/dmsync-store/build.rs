// `sqlx::migrate!` embeds the migration files when db.rs compiles, but cargo does not know the
// folders are inputs: without this, a new migration file is left out of the build until db.rs
// changes. This is sqlx's documented remedy.
fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
