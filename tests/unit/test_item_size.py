"""Item sizes as DynamoDB's developer guide counts them (the benchmarks' write units rest on it)."""

from local_cloud.item_size import item_size, value_size, write_units


def test_strings_count_utf8_bytes_and_names_count_too() -> None:
    assert item_size({"a": {"S": "abc"}}) == 1 + 3
    assert item_size({"body": {"S": "Привет"}}) == 4 + 12  # Cyrillic: two bytes a letter
    assert item_size({"e": {"S": "🙂"}}) == 1 + 4


def test_numbers_are_two_significant_digits_a_byte_plus_one() -> None:
    assert value_size({"N": "1"}) == 2
    assert value_size({"N": "1700000000000"}) == 2  # trailing zeros are trimmed
    assert value_size({"N": "123456"}) == 4
    assert value_size({"N": "0.5"}) == 2


def test_lists_and_maps_have_three_bytes_and_one_per_element() -> None:
    assert value_size({"L": []}) == 3
    assert value_size({"L": [{"S": "ab"}, {"BOOL": True}]}) == 3 + (2 + 1) + (1 + 1)
    assert value_size({"M": {"k": {"S": "v"}}}) == 3 + (1 + 1 + 1)
    assert value_size({"SS": ["a", "bc"]}) == 3


def test_a_write_costs_the_larger_item_per_kilobyte_and_twice_in_a_transaction() -> None:
    small = {"k": {"S": "x" * 100}}
    big = {"k": {"S": "x" * 5000}}
    assert write_units(None, small) == 1
    assert write_units(big, small) == 5  # shrinking a big item is billed at its old size
    assert write_units(small, big, transactional=True) == 10
