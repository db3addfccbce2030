//! Prints IronLB's CRDs as one multi-document YAML stream on stdout.
//!
//! `cargo run -p ironlb-api --bin crdgen > charts/ironlb/crds/ironlb-crds.yaml`

fn main() -> Result<(), Box<dyn std::error::Error>> {
    print!("{}", ironlb_api::crds_yaml()?);
    Ok(())
}
