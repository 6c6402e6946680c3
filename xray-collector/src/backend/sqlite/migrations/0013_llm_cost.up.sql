-- LLM cost, as on PostgreSQL: llm_usage.cost_usd priced at write time from
-- model_prices; no price, no cost.
ALTER TABLE llm_usage ADD COLUMN cost_usd REAL;

CREATE TABLE model_prices (
    model                      TEXT NOT NULL PRIMARY KEY,
    prompt_usd_per_million     REAL NOT NULL CHECK (prompt_usd_per_million >= 0),
    completion_usd_per_million REAL NOT NULL CHECK (completion_usd_per_million >= 0),
    source                     TEXT NOT NULL
) STRICT;
