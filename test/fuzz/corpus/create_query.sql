create or replace sync "Odd Name" from (select id, x from t where y = 'a;b' -- c
) to hooks object contacts key (id, x) match on email mode mirror schedule cron '*/5 * * * *';