#[xray::step(skip(token), redact(token))]
fn call(token: &str) -> usize {
    token.len()
}

#[xray::step(skip(a, a))]
fn listed_twice(a: u32) -> u32 {
    a
}

#[xray::step(skip())]
fn empty_list(a: u32) -> u32 {
    a
}

#[xray::step(redact(self))]
fn with_self_in_list(a: u32) -> u32 {
    a
}

fn main() {}
