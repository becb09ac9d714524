-- waauth schema version 3: a record's file name is one plain entry of its session folder.
-- materialize writes each row to <folder>/<file_name>: a name holding '/' (so '../x' or an
-- absolute path), '.' / '..', a hidden name or one not ending in '.json' would be written
-- outside the folder or be ignored by every reader of it. waauth checks names itself at every
-- boundary (waauth.layout.check_file_name); this CHECK is the second wall, against rows that
-- anyone with INSERT on records plants. It matches that check exactly (NUL needs no test:
-- text cannot hold it; 255 is the file systems' limit on a name, in bytes).
-- NOT VALID: rows stored before this migration are not checked, so a database that holds a
-- hostile row still migrates; waauth refuses such rows when it reads them (materialize,
-- rotate-key and pull name them). Any row inserted or updated from now on is checked.

ALTER TABLE {schema}.records ADD CONSTRAINT records_file_name CHECK (
    strpos(file_name, '/') = 0
    AND left(file_name, 1) <> '.'
    AND length(file_name) > 5
    AND right(file_name, 5) = '.json'
    AND octet_length(file_name) <= 255
) NOT VALID;
