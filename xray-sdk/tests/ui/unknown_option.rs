#[xray::step(nmae = "fetch")]
fn fetch(id: u32) -> u32 {
    id
}

fn main() {}
