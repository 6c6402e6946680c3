#[xray::step(skip_all, skip(a))]
fn skip_all_first(a: u32, b: u32) -> u32 {
    a + b
}

#[xray::step(skip(a), skip_all)]
fn skip_first(a: u32, b: u32) -> u32 {
    a + b
}

#[xray::step(skip_all, redact(b))]
fn skip_all_and_redact(a: u32, b: u32) -> u32 {
    a + b
}

fn main() {}
