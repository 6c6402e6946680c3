#[xray::step]
const fn limit() -> u32 {
    10
}

fn main() {}
