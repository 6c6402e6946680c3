#[xray::step(redact(api_key))]
fn call((token, query): (&str, &str)) -> usize {
    token.len() + query.len()
}

fn main() {}
