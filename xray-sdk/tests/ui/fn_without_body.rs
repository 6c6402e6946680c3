trait Filter {
    #[xray::step]
    fn apply(&self, price: f64) -> bool;
}

fn main() {}
