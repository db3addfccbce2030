//! Prints the annotation support table for README.md:
//! `cargo run -q -p ironlb-routes --example annotation_table`.

fn main() {
    print!("{}", ironlb_routes::annotations::markdown_table());
}
