DROP TABLE model_prices;
ALTER TABLE llm_usage DROP COLUMN cost_usd;
