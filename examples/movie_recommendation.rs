//! A second pipeline with its own decisions: recommend a movie for a viewer.
//! Candidate generation (genre match) → filters (already watched, age
//! rating, runtime) → an LLM-style taste score → pick the best.
//!
//! `cargo run --example movie_recommendation`

#[path = "support/trace.rs"]
mod trace;

use serde::Serialize;

#[derive(Debug, Clone, Serialize)]
struct Movie {
    id: &'static str,
    title: &'static str,
    genres: &'static [&'static str],
    minutes: u32,
    age_rating: u8,
}

#[derive(Debug, Serialize)]
struct Viewer {
    name: &'static str,
    age: u8,
    favourite_genres: &'static [&'static str],
    watched: &'static [&'static str],
    max_minutes: u32,
}

const CATALOGUE: &[Movie] = &[
    Movie {
        id: "m1",
        title: "Orbit of Silence",
        genres: &["sci-fi", "drama"],
        minutes: 128,
        age_rating: 12,
    },
    Movie {
        id: "m2",
        title: "The Last Heist",
        genres: &["crime", "thriller"],
        minutes: 101,
        age_rating: 16,
    },
    Movie {
        id: "m3",
        title: "Paper Moons",
        genres: &["drama", "romance"],
        minutes: 95,
        age_rating: 12,
    },
    Movie {
        id: "m4",
        title: "Starfall Protocol",
        genres: &["sci-fi", "action"],
        minutes: 141,
        age_rating: 12,
    },
    Movie {
        id: "m5",
        title: "Little Robot",
        genres: &["sci-fi", "family"],
        minutes: 88,
        age_rating: 0,
    },
    Movie {
        id: "m6",
        title: "Night Shift",
        genres: &["horror"],
        minutes: 99,
        age_rating: 18,
    },
    Movie {
        id: "m7",
        title: "Quantum Garden",
        genres: &["sci-fi", "drama"],
        minutes: 117,
        age_rating: 12,
    },
];

#[xray::step(kind = "retrieve")]
fn candidates(viewer: &Viewer) -> Vec<Movie> {
    CATALOGUE
        .iter()
        .filter(|m| m.genres.iter().any(|g| viewer.favourite_genres.contains(g)))
        .cloned()
        .collect()
}

#[xray::step(kind = "filter")]
fn filter_movies(viewer: &Viewer, movies: Vec<Movie>) -> Vec<Movie> {
    movies
        .into_iter()
        .filter(|m| {
            if viewer.watched.contains(&m.id) {
                xray::reject(m.id, "watched", "already watched");
                false
            } else if m.age_rating > viewer.age {
                xray::reject(
                    m.id,
                    "age",
                    format!("rated {} > age {}", m.age_rating, viewer.age),
                );
                false
            } else if m.minutes > viewer.max_minutes {
                xray::reject(
                    m.id,
                    "runtime",
                    format!("{} min > {} min", m.minutes, viewer.max_minutes),
                );
                false
            } else {
                xray::accept(m.id, "all", "unwatched, allowed, fits the evening");
                true
            }
        })
        .collect()
}

/// A deterministic stand-in for an LLM rating how well a movie fits.
#[xray::step(kind = "llm")]
fn taste_score(viewer: &Viewer, movies: &[Movie]) -> Vec<(&'static str, f64)> {
    let scored: Vec<(&'static str, f64)> = movies
        .iter()
        .map(|m| {
            let overlap = m
                .genres
                .iter()
                .filter(|g| viewer.favourite_genres.contains(g))
                .count() as f64;
            let score =
                overlap / m.genres.len() as f64 * 0.8 + (1.0 - f64::from(m.minutes) / 200.0) * 0.2;
            xray::score(m.id, score);
            (m.id, (score * 1000.0).round() / 1000.0)
        })
        .collect();
    xray::llm_usage(
        "taste-model-v2",
        60 * movies.len() as u64,
        4 * movies.len() as u64,
    );
    scored
}

#[xray::step(kind = "rank")]
fn pick(scored: Vec<(&'static str, f64)>) -> Option<&'static str> {
    let best = scored.iter().max_by(|a, b| a.1.total_cmp(&b.1))?;
    for (id, score) in &scored {
        if id == &best.0 {
            xray::accept(id, "rank", format!("best score {score}"));
        } else {
            xray::reject(id, "rank", format!("score {score} < {}", best.1));
        }
    }
    Some(best.0)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let guard = xray::Config::from_env().project("movies").init()?;
    let viewer = Viewer {
        name: "sam",
        age: 14,
        favourite_genres: &["sci-fi", "drama"],
        watched: &["m1"],
        max_minutes: 130,
    };
    let (pick, id) = xray::execution("movie_recommendation")
        .metadata("viewer", viewer.name)
        .run(|| {
            let movies = candidates(&viewer);
            let allowed = filter_movies(&viewer, movies);
            let scored = taste_score(&viewer, &allowed);
            (pick(scored), xray::current_execution_id())
        });
    println!("recommended: {}", pick.unwrap_or("nothing"));
    let id = id.ok_or("X-Ray is disabled: nothing was recorded")?;
    trace::ship_and_show(&guard, &id, &["m4", "m1"])
}
