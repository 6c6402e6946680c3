DROP INDEX decisions_by_candidate_anywhere;
DROP INDEX steps_by_parent;
