{#-
  revetl macros for dbt.

  Post-hook on a model (runs in the model's transaction by default; the run
  starts when that transaction commits and sees the new data):

    {{ config(post_hook="{{ revetl.run_sync('leads_to_crm') }}") }}

  Define or update syncs from dbt (CREATE OR REPLACE is safe to re-run):

    dbt run-operation revetl.execute --args '{statements: "CREATE OR REPLACE SYNC ..."}'
-#}

{#- A SQL string literal: single quotes doubled. -#}
{% macro literal(value) -%}
'{{ value | string | replace("'", "''") }}'
{%- endmacro %}

{#- A dollar-quoted string whose tag does not occur in the text. -#}
{% macro dollar_quote(text) -%}
{%- set ns = namespace(tag='revetl') -%}
{%- for i in range(100) -%}
  {%- if ('$' ~ ns.tag ~ '$') in text -%}{%- set ns.tag = 'revetl' ~ i -%}{%- endif -%}
{%- endfor -%}
${{ ns.tag }}${{ text }}${{ ns.tag }}$
{%- endmacro %}

{#-
  The statement that requests a run of a sync. `wait` must stay false in a
  post-hook that runs inside the model's transaction (revetl refuses to wait
  for a request that is not committed yet); use it in hooks that run outside
  a transaction, such as on-run-end or a non-transactional post-hook.
-#}
{% macro run_sync(sync_name, wait=false, full=false, resync=false, allow_removals=false) -%}
select revetl.run_sync({{ revetl.literal(sync_name) }}
  {%- if wait %}, wait => true{% endif %}
  {%- if full %}, full => true{% endif %}
  {%- if resync %}, resync => true{% endif %}
  {%- if allow_removals %}, allow_removals => true{% endif %})
{%- endmacro %}

{#- Runs CREATE / ALTER / DROP SYNC statements (for run-operation). -#}
{% macro execute(statements) -%}
  {%- set sql -%}select * from revetl.execute({{ revetl.dollar_quote(statements) }}){%- endset -%}
  {%- set result = run_query(sql) -%}
  {%- if execute and result is not none -%}
    {%- for row in result.rows -%}{{ log(row[0], info=true) }}{%- endfor -%}
  {%- endif -%}
{%- endmacro %}
