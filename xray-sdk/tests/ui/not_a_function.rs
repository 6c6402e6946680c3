#[xray::step]
struct Candidate {
    asin: String,
}

struct Ranker;

#[xray::step]
impl Ranker {
    fn rank(&self) {}
}

#[xray::step]
const LIMIT: u32 = 10;

fn main() {}
